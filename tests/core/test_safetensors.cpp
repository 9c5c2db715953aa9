// safetensors: round trips of F32/I8/I32 and metadata, the exact byte layout, every kind of
// corrupt file, and model checkpoints (missing, extra and mismatched tensors).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include "effml/layers/activation.h"
#include "effml/layers/linear.h"
#include "effml/rng.h"
#include "effml/safetensors.h"
#include "temp_dir.h"

using namespace effml;
namespace fs = std::filesystem;
using effml::testing::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes a safetensors file by hand: the 8-byte length (the header's own unless overridden),
// the header text and `data` bytes of data area.
void write_raw(const std::string& path, const std::string& header, std::size_t data,
               uint64_t length = std::numeric_limits<uint64_t>::max()) {
  if (length == std::numeric_limits<uint64_t>::max()) length = header.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>(length >> (8 * i));
  bytes += header;
  bytes += std::string(data, '\x01');
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Linear(in, hidden), ReLU, Linear(hidden, out) with standard normal weights.
std::unique_ptr<Sequential> make_mlp(int64_t in, int64_t hidden, int64_t out, uint64_t seed) {
  auto m = std::make_unique<Sequential>();
  m->emplace<Linear>(in, hidden);
  m->emplace<ReLU>();
  m->emplace<Linear>(hidden, out);
  Rng rng(seed);
  for (auto& np : m->named_parameters())
    np.param->value = Tensor::randn(np.param->value.shape(), rng);
  return m;
}

// A layer with both parameters and buffers, named like torch.nn.BatchNorm2d's state_dict.
class Normish : public Module {
 public:
  explicit Normish(int64_t c)
      : weight(Tensor::ones({c})), bias(Tensor::zeros({c})), running_mean({c}),
        running_var(Tensor::ones({c})) {}
  Tensor forward(const Tensor& x) override { return x; }
  Tensor backward(const Tensor& dy) override { return dy; }
  std::string describe() const override { return "Normish"; }
  Shape output_shape(const Shape& in) const override { return in; }
  std::vector<std::pair<std::string, Parameter*>> local_parameters() override {
    return {{"weight", &weight}, {"bias", &bias}};
  }
  std::vector<std::pair<std::string, Tensor*>> local_buffers() override {
    return {{"running_mean", &running_mean}, {"running_var", &running_var}};
  }
  Parameter weight, bias;
  Tensor running_mean, running_var;
};

}  // namespace

TEST_CASE("safetensors: round trip of F32, I8, I32 and metadata", "[safetensors]") {
  TempDir dir("safetensors");
  const std::string path = dir.file("t.safetensors");
  const Tensor f({2, 3}, std::vector<float>{1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -1e30f});
  const Tensor i8 = Tensor::from_i8({5}, {-128, -1, 0, 1, 127});
  const Tensor i32 = Tensor::from_i32({2, 2}, {std::numeric_limits<int32_t>::min(), -7, 0,
                                               std::numeric_limits<int32_t>::max()});
  const Tensor scalar = Tensor::full({}, 42.0f);
  const Tensor empty({0, 5});
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "{\"json\": [1, 2]}"}};
  // Saved out of alphabetical order: the file keeps the given order.
  save_safetensors(path, {{"z.weight", &f}, {"a.q", &i8}, {"m.acc", &i32}, {"s", &scalar},
                          {"e", &empty}},
                   meta);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  const SafetensorsFile file = load_safetensors(path);
  REQUIRE(file.tensors.size() == 5);
  CHECK(file.tensors[0].first == "z.weight");
  CHECK(file.tensors[1].first == "a.q");
  CHECK(file.tensors[4].first == "e");
  CHECK(file.at("z.weight").equal(f));
  CHECK(file.at("a.q").equal(i8));
  CHECK(file.at("a.q").dtype() == DType::Int8);
  CHECK(file.at("m.acc").equal(i32));
  CHECK(file.at("s").shape() == Shape{});
  CHECK(file.at("s").item() == 42.0f);
  CHECK(file.at("e").shape() == Shape{0, 5});
  CHECK(file.metadata == meta);
  CHECK(read_metadata(path) == meta);
  CHECK(file.contains("s"));
  CHECK_THROWS_WITH(file.at("nope"), Catch::Contains("'nope'") && Catch::Contains("z.weight"));
}

TEST_CASE("safetensors: the exact byte layout", "[safetensors]") {
  TempDir dir("safetensors");
  const std::string path = dir.file("t.safetensors");
  const Tensor w({2}, std::vector<float>{1.0f, -2.0f});
  const Tensor q = Tensor::from_i8({3}, {1, -1, 2});
  save_safetensors(path, {{"w", &w}, {"q", &q}}, {{"k", "v"}});
  const std::string header =
      R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("q":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  std::string expected(8, '\0');
  for (int i = 0; i < 8; ++i)
    expected[static_cast<std::size_t>(i)] = static_cast<char>(padded.size() >> (8 * i));
  expected += padded;
  expected.append(reinterpret_cast<const char*>(w.raw()), 8);
  expected += std::string("\x01\xff\x02", 3);
  const std::string got = read_bytes(path);
  CHECK(got == expected);
  CHECK((8 + padded.size()) % 8 == 0);
}

TEST_CASE("safetensors: corrupt files are refused with a message naming the file", "[safetensors]") {
  TempDir dir("safetensors");
  const std::string path = dir.file("bad.safetensors");
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

  write_raw(path, ok, 8);
  CHECK(load_safetensors(path).at("a").numel() == 2);  // the baseline is valid

  SECTION("shorter than the length field") {
    std::ofstream(path, std::ios::binary).write("abc", 3);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("3 bytes, too few"));
  }
  SECTION("header length larger than the file") {
    write_raw(path, ok, 8, 1000);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) &&
                          Catch::Contains("header length 1000 is larger than the file"));
    CHECK_THROWS_WITH(read_metadata(path), Catch::Contains("header length 1000"));
  }
  SECTION("bad JSON") {
    write_raw(path, R"({"a": {"dtype": "F32",)", 0);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("not valid JSON"));
  }
  SECTION("JSON that is not an object") {
    write_raw(path, "[1, 2]", 0);
    CHECK_THROWS_WITH(load_safetensors(path), Catch::Contains(path) && Catch::Contains("not an object"));
  }
  SECTION("unsupported dtype") {
    write_raw(path, R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("tensor 'h'") &&
                          Catch::Contains("F16 is not supported; tensors must be F32, I8 or I32"));
  }
  SECTION("negative size in the shape") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8);
    CHECK_THROWS_WITH(load_safetensors(path), Catch::Contains(path) && Catch::Contains("[-2]"));
  }
  SECTION("offsets out of range") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 6);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("out of range") &&
                          Catch::Contains("data area holds 6 bytes"));
  }
  SECTION("offsets that do not match shape * dtype size") {
    write_raw(path, R"({"a":{"dtype":"I32","shape":[3],"data_offsets":[0,8]}})", 8);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("I32 (3,) needs 12 bytes") &&
                          Catch::Contains("span 8"));
  }
  SECTION("overlapping tensors") {
    write_raw(path,
              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              12);
    CHECK_THROWS_WITH(load_safetensors(path), Catch::Contains(path) && Catch::Contains("overlap") &&
                                                  Catch::Contains("'a'") && Catch::Contains("'b'"));
  }
  SECTION("a gap between tensors") {
    write_raw(path,
              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"I8","shape":[2],"data_offsets":[10,12]}})",
              12);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("gap of 2 bytes before tensor 'b'"));
  }
  SECTION("bytes after the last tensor") {
    write_raw(path, ok, 9);
    CHECK_THROWS_WITH(load_safetensors(path),
                      Catch::Contains(path) && Catch::Contains("1 bytes after the last tensor"));
  }
  SECTION("metadata that is not strings") {
    write_raw(path, R"({"__metadata__":{"epochs":3}})", 0);
    CHECK_THROWS_WITH(read_metadata(path),
                      Catch::Contains(path) && Catch::Contains("'epochs' must be a string"));
  }
  SECTION("an entry without data_offsets") {
    write_raw(path, R"({"a":{"dtype":"F32","shape":[2]}})", 8);
    CHECK_THROWS_WITH(load_safetensors(path), Catch::Contains(path) && Catch::Contains("tensor 'a'"));
  }
  SECTION("a missing file") {
    CHECK_THROWS_WITH(load_safetensors(dir.file("absent")),
                      Catch::Contains(dir.file("absent")) && Catch::Contains("cannot"));
  }
}

TEST_CASE("safetensors: saving refuses bad names and unwritable paths", "[safetensors]") {
  TempDir dir("safetensors");
  const Tensor t({1});
  CHECK_THROWS_WITH(save_safetensors(dir.file("a"), {{"x", &t}, {"x", &t}}),
                    Catch::Contains("duplicate tensor name 'x'"));
  CHECK_THROWS_WITH(save_safetensors(dir.file("a"), {{"__metadata__", &t}}),
                    Catch::Contains("invalid tensor name"));
  const std::string nowhere = dir.file("no/such/folder/m.safetensors");
  CHECK_THROWS_WITH(save_safetensors(nowhere, {{"x", &t}}),
                    Catch::Contains(nowhere + ".tmp") && Catch::Contains("cannot create"));
}

TEST_CASE("checkpoint: a Sequential of Linear layers round trip", "[safetensors][checkpoint]") {
  TempDir dir("safetensors");
  const std::string path = dir.file("mlp.safetensors");
  auto a = make_mlp(4, 8, 3, 1);
  save_checkpoint(path, *a, {{"arch", "mlp-4-8-3"}, {"epochs", "2"}});

  const SafetensorsFile file = load_safetensors(path);
  std::vector<std::string> names;
  for (const auto& [n, t] : file.tensors) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK(file.at("0.weight").shape() == Shape{8, 4});
  CHECK(read_metadata(path).at("arch") == "mlp-4-8-3");

  auto b = make_mlp(4, 8, 3, 2);
  Rng rng(5);
  const Tensor x = Tensor::randn({6, 4}, rng);
  CHECK_FALSE(a->forward(x).equal(b->forward(x)));
  load_checkpoint(path, *b);
  for (auto& np : b->named_parameters())
    CHECK(np.param->value.equal(a->parameter(np.name).value));
  CHECK(a->forward(x).equal(b->forward(x)));
}

TEST_CASE("checkpoint: buffers follow parameters, num_batches_tracked is ignored",
          "[safetensors][checkpoint]") {
  TempDir dir("safetensors");
  const std::string path = dir.file("bn.safetensors");
  Sequential a;
  a.emplace<Linear>(3, 2);
  a.emplace<Normish>(2);
  a.parameter("1.weight").value.fill_(2.0f);
  static_cast<Normish&>(a[1]).running_var.fill_(0.5f);
  save_checkpoint(path, a);
  std::vector<std::string> names;
  for (const auto& [n, t] : load_safetensors(path).tensors) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                          "1.running_mean", "1.running_var"});

  // PyTorch also writes the batch-norm update counter; it is accepted and ignored.
  SafetensorsFile f = load_safetensors(path);
  const Tensor counter = Tensor::from_i32({}, {17});
  std::vector<std::pair<std::string, const Tensor*>> with_counter;
  for (const auto& [n, t] : f.tensors) with_counter.emplace_back(n, &t);
  with_counter.emplace_back("1.num_batches_tracked", &counter);
  save_safetensors(path, with_counter);
  Sequential b;
  b.emplace<Linear>(3, 2);
  b.emplace<Normish>(2);
  load_checkpoint(path, b);
  CHECK(b.parameter("1.weight").value.to_vector() == std::vector<float>{2, 2});
  CHECK(static_cast<Normish&>(b[1]).running_var.to_vector() == std::vector<float>{0.5f, 0.5f});
}

TEST_CASE("checkpoint: missing, extra and mismatched tensors are all listed",
          "[safetensors][checkpoint]") {
  TempDir dir("safetensors");
  const std::string path = dir.file("mlp.safetensors");
  auto saved = make_mlp(4, 8, 3, 1);
  save_checkpoint(path, *saved);

  SECTION("a mismatched shape names both shapes, and nothing is changed") {
    auto m = make_mlp(4, 8, 2, 9);
    const Tensor before = m->parameter("0.weight").value;
    CHECK_THROWS_WITH(load_checkpoint(path, *m),
                      Catch::Contains(path) &&
                          Catch::Contains("2.weight: model float32 (2, 8), file float32 (3, 8)") &&
                          Catch::Contains("2.bias: model float32 (2,), file float32 (3,)"));
    CHECK(m->parameter("0.weight").value.equal(before));
  }
  SECTION("tensors the file lacks") {
    auto m = make_mlp(4, 8, 3, 9);
    m->emplace<Linear>(3, 5);
    CHECK_THROWS_WITH(load_checkpoint(path, *m),
                      Catch::Contains("Missing from the file (2): 3.weight float32 (5, 3); "
                                      "3.bias float32 (5,)"));
  }
  SECTION("tensors the model lacks") {
    Sequential m;
    m.emplace<Linear>(4, 8);
    CHECK_THROWS_WITH(load_checkpoint(path, m),
                      Catch::Contains("Not in the model (2): 2.weight float32 (3, 8); "
                                      "2.bias float32 (3,)"));
  }
  SECTION("a bias-free layer") {
    Sequential m;
    m.emplace<Linear>(4, 8, /*bias=*/false);
    m.emplace<ReLU>();
    m.emplace<Linear>(8, 3);
    CHECK_THROWS_WITH(load_checkpoint(path, m), Catch::Contains("Not in the model (1): 0.bias"));
  }
}
