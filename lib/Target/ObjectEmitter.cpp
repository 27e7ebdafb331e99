//===- ObjectEmitter.cpp - LLVM dialect module to a native object ----------===//
//
// Part of moe-compiler. In-process code generation through LLVM's
// TargetMachine: compiling a model needs no external compiler (only the final
// link uses the system linker driver).
//
//===----------------------------------------------------------------------===//

#include "moe/Target/ObjectEmitter.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;

LogicalResult mlir::moe::emitObject(ModuleOp module, StringRef path,
                                    const ObjectOptions &options,
                                    bool emitLLVMIR, std::string &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();

  DialectRegistry registry;
  // All of them: gpu.binary / gpu.launch_func translate to the embedded
  // kernels and their launches.
  registerAllToLLVMIRTranslations(registry);
  module->getContext()->appendDialectRegistry(registry);

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "moe-model");
  if (!llvmModule) {
    error = "translation to LLVM IR failed";
    return failure();
  }

  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string lookupError;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, lookupError);
  if (!target) {
    error = "no LLVM target for " + triple.str() + ": " + lookupError;
    return failure();
  }
  std::string cpu = options.cpu == "native"
                        ? llvm::sys::getHostCPUName().str()
                        : options.cpu;
  std::string features;
  if (options.cpu == "native") {
    llvm::SubtargetFeatures f;
    for (const auto &[name, enabled] : llvm::sys::getHostCPUFeatures())
      f.AddFeature(name, enabled);
    features = f.getString();
  }
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target->createMCSubtargetInfo(triple, cpu, features));
  if (!subtarget || !subtarget->isCPUStringValid(cpu)) {
    error = "unknown target CPU '" + cpu + "' for " + triple.str();
    return failure();
  }
  llvm::TargetOptions targetOptions;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpu, features, targetOptions, llvm::Reloc::PIC_));
  if (!machine) {
    error = "could not create a target machine for " + triple.str();
    return failure();
  }
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(triple);

  auto optimize =
      makeOptimizingTransformer(options.optLevel, /*sizeLevel=*/0,
                                machine.get());
  if (llvm::Error err = optimize(llvmModule.get())) {
    error = "LLVM optimization failed: " + llvm::toString(std::move(err));
    return failure();
  }

  std::error_code ec;
  auto out = std::make_unique<llvm::ToolOutputFile>(
      path, ec, emitLLVMIR ? llvm::sys::fs::OF_Text : llvm::sys::fs::OF_None);
  if (ec) {
    error = "cannot write '" + path.str() + "': " + ec.message();
    return failure();
  }
  if (emitLLVMIR) {
    llvmModule->print(out->os(), nullptr);
  } else {
    llvm::legacy::PassManager codegen;
    if (machine->addPassesToEmitFile(codegen, out->os(), nullptr,
                                     llvm::CodeGenFileType::ObjectFile)) {
      error = "the target cannot emit object files";
      return failure();
    }
    codegen.run(*llvmModule);
  }
  out->os().flush();
  if (out->os().has_error()) {
    error = "error writing '" + path.str() + "'";
    out->os().clear_error();
    return failure();
  }
  out->keep();
  return success();
}
