// A libtorch C++ program that runs a scripted model and an AOTInductor package which
// call the multi_lfilter op library, with nothing of Python involved. Built and run by
// tests/test_cpp.py.
//
//   run_models <op library> <scripted.pt> <package.pt2> <inputs_and_expected.pt>
//
// Loads the op library (its static initialisers register the multi_lfilter::native_*
// operators), then checks each model's output on the saved input against the saved
// expected output; prints "scripted-ok" and "aoti-ok".
#include <dlfcn.h>

#include <iostream>
#include <string>
#include <vector>

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: run_models <op library> <scripted.pt> <package.pt2> <io.pt>\n";
    return 2;
  }
  if (dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    std::cerr << "cannot load the op library: " << dlerror() << "\n";
    return 1;
  }
  torch::jit::Module io = torch::jit::load(argv[4]);
  torch::Tensor waveform = io.attr("waveform").toTensor();
  torch::Tensor expected = io.attr("expected").toTensor();
  torch::NoGradGuard no_grad;

  torch::jit::Module scripted = torch::jit::load(argv[2]);
  torch::Tensor scripted_output = scripted.forward({waveform}).toTensor();
  if (!torch::allclose(scripted_output, expected, 1e-5, 1e-5)) {
    std::cerr << "the scripted model's output differs\n";
    return 1;
  }
  std::cout << "scripted-ok" << std::endl;

  torch::inductor::AOTIModelPackageLoader loader(argv[3]);
  std::vector<torch::Tensor> outputs = loader.run({waveform});
  if (!torch::allclose(outputs.at(0), expected, 1e-5, 1e-5)) {
    std::cerr << "the AOTInductor package's output differs\n";
    return 1;
  }
  std::cout << "aoti-ok" << std::endl;
  return 0;
}
