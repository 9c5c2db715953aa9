#include "effml/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "effml/loss.h"
#include "effml/metrics.h"
#include "effml/optim.h"
#include "effml/progress.h"

namespace effml {

EvalResult evaluate(Module& model, const Dataset& data, int64_t batch_size) {
  const bool was_training = model.is_training();
  model.eval();
  Batcher batcher(data, batch_size, /*shuffle=*/false, /*seed=*/0);
  batcher.start_epoch();
  SoftmaxCrossEntropy ce;
  Tensor images;
  std::vector<int32_t> labels;
  double loss_sum = 0, correct = 0;
  int64_t count = 0;
  while (batcher.next(images, labels)) {
    const Tensor logits = model.forward(images);
    const auto n = static_cast<int64_t>(labels.size());
    loss_sum += static_cast<double>(ce.forward(logits, labels)) * n;
    correct += accuracy(logits, labels) * n;
    count += n;
  }
  model.train(was_training);
  EvalResult r;
  r.count = count;
  if (count) {
    r.loss = loss_sum / count;
    r.accuracy = correct / count;
  }
  return r;
}

namespace {
std::unique_ptr<LrSchedule> make_schedule(const TrainConfig& c) {
  if (c.schedule == "cosine") return std::make_unique<CosineLr>(c.lr, c.epochs);
  if (c.schedule == "step") return std::make_unique<StepLr>(c.lr, std::max(1, c.epochs / 3), 0.1f);
  if (c.schedule == "constant") return std::make_unique<ConstantLr>(c.lr);
  throw Error("unknown schedule '" + c.schedule + "'; use cosine, step or constant");
}

std::unique_ptr<Optimizer> make_optimizer(Module& model, const TrainConfig& c) {
  if (c.optimizer == "sgd")
    return std::make_unique<SGD>(model.named_parameters(), c.lr, c.momentum, c.weight_decay);
  if (c.optimizer == "adam")
    return std::make_unique<Adam>(model.named_parameters(), c.lr, 0.9f, 0.999f, 1e-8f,
                                  c.weight_decay);
  throw Error("unknown optimizer '" + c.optimizer + "'; use sgd or adam");
}

// The teacher's logits for every sample of `data`, in order: (N, classes).
Tensor logits_of_all(Module& teacher, const Dataset& data) {
  Batcher batcher(data, 256, /*shuffle=*/false, /*seed=*/0);
  Tensor images, all;
  std::vector<int32_t> labels;
  int64_t row = 0;
  while (batcher.next(images, labels)) {
    const Tensor logits = teacher.forward(images);
    const auto n = static_cast<int64_t>(labels.size());
    EFFML_CHECK(logits.dim() == 2 && logits.size(0) == n &&
                    (row == 0 || logits.size(1) == all.size(1)),
                "train: the teacher's logits are " << logits.shape_str() << " for a batch of " << n
                                                   << " images; expected (" << n << ", classes)");
    const int64_t classes = logits.size(1);
    if (row == 0) all = Tensor::empty({data.size(), classes});
    std::copy(logits.data(), logits.data() + n * classes, all.data() + row * classes);
    row += n;
  }
  return all;
}

std::string fmt(const char* f, double a, double b) {
  char buf[96];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}
}  // namespace

std::vector<EpochStats> train(Module& model, const Dataset& train_set, const Dataset* test,
                              const TrainConfig& config, const TrainHooks& hooks) {
  EFFML_CHECK(config.epochs >= 0 && config.batch_size > 0,
              "train: epochs " << config.epochs << " and batch size " << config.batch_size);
  auto schedule = make_schedule(config);
  auto opt = make_optimizer(model, config);
  Batcher batcher(train_set, config.batch_size, /*shuffle=*/true, config.seed);
  SoftmaxCrossEntropy ce;
  std::vector<EpochStats> history;
  // The first layer's input is data: no gradient is needed for it.
  model.needs_input_grad = false;
  Tensor images;
  std::vector<int32_t> labels;
  EFFML_CHECK(config.distill_alpha >= 0.0f && config.distill_alpha <= 1.0f,
              "train: distill_alpha must be in [0, 1], got " << config.distill_alpha);
  const bool distilling = config.teacher != nullptr && config.distill_alpha > 0.0f;
  // The teacher runs in evaluation mode on the images as stored, so its logits for a sample are
  // the same in every epoch: computed once, then gathered in each batch's order. Without this
  // the teacher's forward pass took a third of every distillation epoch.
  Tensor teacher_logits;
  if (distilling && config.epochs > 0) {
    config.teacher->eval();
    teacher_logits = logits_of_all(*config.teacher, train_set);
  }
  for (int e = 0; e < config.epochs; ++e) {
    EpochStats st;
    st.epoch = e + 1;
    st.lr = schedule->lr_at(e);
    opt->set_lr(st.lr);
    model.train();
    batcher.start_epoch();
    ProgressBar bar("epoch " + std::to_string(e + 1) + "/" + std::to_string(config.epochs),
                    batcher.num_batches(), config.progress);
    const auto t0 = std::chrono::steady_clock::now();
    double loss_sum = 0, correct = 0;
    int64_t seen = 0, step = 0;
    while (batcher.next(images, labels)) {
      opt->zero_grad();
      const Tensor logits = model.forward(images);
      EFFML_CHECK(!logits.has_nonfinite(), "train: the logits became NaN or infinite at epoch "
                                               << e + 1 << ", batch " << step + 1
                                               << "; lower the learning rate (" << st.lr << ")");
      const float loss = ce.forward(logits, labels);
      if (distilling) {
        const float a = config.distill_alpha;
        Tensor g = ce.backward() * (1.0f - a);
        // This batch's samples: the next labels.size() of the epoch's order.
        const auto first = batcher.order().begin() + step * config.batch_size;
        const std::vector<int64_t> samples(first, first + static_cast<int64_t>(labels.size()));
        g.add_(distillation_grad(logits, teacher_logits.index_select(0, samples),
                                 config.distill_temperature),
               a);
        model.backward(g);
      } else {
        model.backward(ce.backward());
      }
      opt->step();
      if (hooks.after_step) hooks.after_step();
      const auto n = static_cast<int64_t>(labels.size());
      loss_sum += static_cast<double>(loss) * n;
      correct += accuracy(logits, labels) * n;
      seen += n;
      ++step;
      bar.update(step, fmt("loss %.4f  acc %.1f%%", loss_sum / seen, 100.0 * correct / seen));
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    st.train_loss = seen ? loss_sum / seen : 0;
    st.train_accuracy = seen ? correct / seen : 0;
    std::string info = fmt("loss %.4f  acc %.2f%%", st.train_loss, 100.0 * st.train_accuracy);
    if (test) {
      const EvalResult r = evaluate(model, *test);
      st.test_loss = r.loss;
      st.test_accuracy = r.accuracy;
      info += fmt("  test loss %.4f  test acc %.2f%%", r.loss, 100.0 * r.accuracy);
    }
    bar.finish(info);
    history.push_back(st);
    if (hooks.after_epoch) hooks.after_epoch(st);
  }
  model.needs_input_grad = true;
  return history;
}

}  // namespace effml
