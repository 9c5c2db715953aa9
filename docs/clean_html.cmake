# Empties the html folder HTML_DIR except its mathjax/ copy, so pages of deleted headers do not
# linger between Doxygen runs. Run with: cmake -DHTML_DIR=<dir> -P clean_html.cmake
if(NOT HTML_DIR)
  message(FATAL_ERROR "clean_html.cmake: pass -DHTML_DIR=<html folder>")
endif()
file(GLOB entries "${HTML_DIR}/*")
foreach(entry ${entries})
  get_filename_component(name ${entry} NAME)
  if(NOT name STREQUAL "mathjax")
    file(REMOVE_RECURSE ${entry})
  endif()
endforeach()
