/// \file layers.h
/// \brief Every layer of the core in one include: Linear, ReLU, Flatten, Conv2d, BatchNorm2d,
/// MaxPool2d, AvgPool2d, GlobalAvgPool2d, Dropout (and Module, Sequential).
#pragma once

#include "effml/layers/activation.h"
#include "effml/layers/batchnorm2d.h"
#include "effml/layers/conv2d.h"
#include "effml/layers/dropout.h"
#include "effml/layers/flatten.h"
#include "effml/layers/linear.h"
#include "effml/layers/pooling.h"
#include "effml/module.h"
