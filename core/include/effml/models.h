/// \file models.h
/// \brief The models the labs train and compress, by name.
///
/// | name       | model                                             | parameters | MACs/image |
/// |------------|---------------------------------------------------|-----------:|-----------:|
/// | `lenet300` | LeNet-300-100: 784-300-100-10 MLP (LeCun 1998)      | 266,610    | 266,200    |
/// | `lenet5`   | LeNet-5 with ReLU and max-pooling                  | 61,706     | 416,520    |
/// | `vgg`      | small VGG-style CNN, conv-BN-ReLU blocks, 3 pools  | see `effml info vgg` |  |
///
/// Parameter names follow the equivalent PyTorch `nn.Sequential(OrderedDict(...))`, e.g.
/// `fc1.weight` or `features.0.weight`, so checkpoints load as PyTorch state_dicts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "effml/module.h"

namespace effml {

/// Input shape of one image of the models here: (1, 1, 28, 28).
Shape image_input_shape(int64_t batch = 1);

/// LeNet-300-100: flatten, fc1 (784->300), ReLU, fc2 (300->100), ReLU, fc3 (100->10).
std::unique_ptr<Sequential> make_lenet300();
/// LeNet-5: features (Conv 1->6 k5 p2, ReLU, MaxPool 2, Conv 6->16 k5, ReLU, MaxPool 2),
/// flatten, classifier (Linear 400->120, ReLU, Linear 120->84, ReLU, Linear 84->10).
std::unique_ptr<Sequential> make_lenet5();
/// VGG-style CNN for 28x28 inputs: features = conv3x3-BN-ReLU blocks with channels
/// {16, M, 32, M, 64, 64, M} (M = 2x2 max-pool), flatten, classifier Linear(64*3*3, 10).
/// The model of the pruning and quantization labs.
std::unique_ptr<Sequential> make_vgg();
/// The VGG-style CNN with other widths: `cfg` lists, in order, the output channels of each
/// conv3x3 (padding 1, no bias) + BatchNorm2d + ReLU block, and 0 for each 2x2 max-pool;
/// make_vgg() is `make_vgg({16, 0, 32, 0, 64, 64, 0})`. The classifier is
/// Linear(C * S * S, 10), C the last block's channels and S = 28 halved at each pool (rounded
/// down). Parameter names are those of make_vgg(), so a channel-pruned VGG keeps them.
/// Weights are left as the layers initialise them (call init_kaiming() for training).
/// Throws effml::Error for an empty cfg, a negative entry, no conv block, or pools that
/// shrink 28x28 to nothing.
std::unique_ptr<Sequential> make_vgg(const std::vector<int64_t>& cfg);
/// The cfg of a VGG built by make_vgg(cfg), read back from its layers (0 for each pool).
/// Throws effml::Error naming the layer when `model` is not such a VGG.
std::vector<int64_t> vgg_config(Sequential& model);

/// Builds a model by name ("lenet300", "lenet5", "vgg") with Kaiming weights from `seed`.
/// Throws listing the known names for any other name.
std::unique_ptr<Sequential> make_model(const std::string& name, uint64_t seed = 0);
/// The names make_model knows.
std::vector<std::string> model_names();

}  // namespace effml
