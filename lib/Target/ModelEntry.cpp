//===- ModelEntry.cpp - The executable-facing side of a compiled model -----===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/ModelEntry.h"

#include "moe/Conversion/MoEToGPU/GpuHelpers.h"
#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/Target/CUDA/DenseKernels.h"
#include "moe/Target/CUDA/ExpertKernels.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/AttrTypeSubElements.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moe;

std::string ModelSignature::serialize() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (!grid.empty()) {
    os << "grid ";
    llvm::interleave(grid, os, "x");
    os << '\n';
  }
  if (decoderStart)
    os << "decoder-start " << *decoderStart << '\n';
  if (capturable)
    os << "capturable-step\n";
  for (const ModelBuffer &b : buffers) {
    os << (b.device ? "device-" : "")
       << (b.kind == ModelBuffer::Kind::Input    ? "input"
           : b.kind == ModelBuffer::Kind::Weight ? "weight"
                                                 : "output")
       << ' ' << b.name << ' ' << b.dtype << ' ';
    if (b.shape.empty())
      os << "scalar";
    llvm::interleave(b.shape, os, "x");
    if (!b.layout.empty())
      os << ' ' << b.layout;
    if (!b.quant.empty())
      os << " quant=" << b.quant;
    if (llvm::any_of(b.split, [](const auto &axes) { return !axes.empty(); })) {
      os << " split=";
      llvm::interleave(
          b.split, os,
          [&](const std::vector<int16_t> &axes) {
            if (axes.empty())
              os << '-';
            llvm::interleave(axes, os, ".");
          },
          "|");
    }
    os << '\n';
  }
  return text;
}

static std::optional<std::string> dtypeName(Type t) {
  if (t.isBF16())
    return "BF16";
  if (t.isF16())
    return "F16";
  if (t.isF32())
    return "F32";
  if (t.isSignlessInteger(32))
    return "I32";
  return std::nullopt;
}

/// Reads `moe.input`/`moe.weight`/`moe.output` from an attribute dictionary.
static LogicalResult bufferFromAttrs(Operation *where, DictionaryAttr attrs,
                                     bool isResult, unsigned index, Type type,
                                     ModelBuffer &out) {
  std::string what =
      (isResult ? "result #" : "argument #") + std::to_string(index);
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return where->emitError() << what << " has type " << type
                              << "; model entries take ranked tensors";
  if (!tensor.hasStaticShape())
    return where->emitError()
           << what << " has the dynamic shape " << type
           << "; moe-compile needs static shapes at the model entry";
  std::optional<std::string> dtype = dtypeName(tensor.getElementType());
  if (!dtype)
    return where->emitError() << what << " has element type "
                              << tensor.getElementType()
                              << "; supported: bf16, f16, f32, i32";
  out.dtype = *dtype;
  out.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
  auto name = [&](StringRef key) -> StringAttr {
    return attrs ? dyn_cast_or_null<StringAttr>(attrs.get(key)) : nullptr;
  };
  if (isResult) {
    out.kind = ModelBuffer::Kind::Output;
    StringAttr n = name("moe.output");
    out.name = n ? n.str() : "result" + std::to_string(index);
    return success();
  }
  if (StringAttr n = name("moe.weight")) {
    out.kind = ModelBuffer::Kind::Weight;
    out.name = n.str();
    // Imported checkpoints store Linear weights [out, in] (and experts one
    // tensor each); the signature says so, and the loader must comply.
    if (attrs.get("moe.transpose"))
      out.layout = "transpose";
    if (auto stack = dyn_cast_or_null<StringAttr>(attrs.get("moe.stack")))
      out.layout = ("stack-" + stack.getValue()).str();
    // Any other layout the loader knows, by its name (qkv-transpose:H:i).
    if (auto layout = dyn_cast_or_null<StringAttr>(attrs.get("moe.layout")))
      out.layout = layout.str();
    if (Attribute quant = attrs.get("moe.quant")) {
      // "fp8:BO:BI": block-scaled E4M3, dequantized by the loader into a
      // float matrix.
      auto text = dyn_cast<StringAttr>(quant);
      SmallVector<StringRef> parts;
      if (text)
        text.getValue().split(parts, ':');
      unsigned bo = 0, bi = 0;
      if (!text || parts.size() != 3 || parts[0] != "fp8" ||
          parts[1].getAsInteger(10, bo) || parts[2].getAsInteger(10, bi) ||
          bo == 0 || bi == 0)
        return where->emitError()
               << what << ": moe.quant must be \"fp8:BO:BI\" (E4M3 in blocks "
               << "of BO x BI, positive), got " << quant;
      if (out.dtype == "I32" ||
          out.shape.size() != 2 + (out.layout == "stack-transpose"))
        return where->emitError()
               << what << ": a quantized weight (moe.quant) must be a float "
               << "matrix, or a stack of them with moe.stack; got " << type;
      out.quant = text.str();
    }
    if (auto split = dyn_cast_or_null<ArrayAttr>(attrs.get("moe.split")))
      for (Attribute a : split)
        if (auto axes = dyn_cast<DenseI16ArrayAttr>(a))
          out.split.emplace_back(axes.asArrayRef().begin(),
                                 axes.asArrayRef().end());
  } else {
    out.kind = ModelBuffer::Kind::Input;
    StringAttr in = name("moe.input");
    out.name = in ? in.str() : "arg" + std::to_string(index);
  }
  return success();
}

static bool isGpuLayer(moe::LayerOp layer) {
  return moe::whyNotGpuLayer(layer).empty();
}

/// Whether every use of `arg` is an operand that the CUDA pipeline reads on
/// the GPU: expert weights of bf16 moe.layer / moe.experts ops, the router
/// weights and input of layers that run whole on the GPU, and the weights
/// and KV caches of the dense parts that run on the GPU (DenseKernels.h).
static bool onlyGpuOperand(BlockArgument arg) {
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  if (!type || arg.use_empty())
    return false;
  return llvm::all_of(arg.getUses(), [&](OpOperand &use) {
    Operation *user = use.getOwner();
    // Weights, caches and activations of the dense parts run on the GPU.
    if (moe::isGpuDenseOperand(use))
      return true;
    if (auto layer = dyn_cast<moe::LayerOp>(user)) {
      if (isGpuLayer(layer) &&
          (use.get() == layer.getInput() ||
           use.get() == layer.getRouterWeight() ||
           use.get() == layer.getRouterBias() ||
           use.get() == layer.getSharedUp() ||
           use.get() == layer.getSharedGate() ||
           use.get() == layer.getSharedDown() ||
           use.get() == layer.getSharedCoef() ||
           use.get() == layer.getMlpUp() || use.get() == layer.getMlpDown() ||
           use.get() == layer.getMlpCoef() ||
           use.get() == layer.getMlpCoefBias()))
        return true;
      if (!type.getElementType().isBF16())
        return false;
      return use.get() == layer.getWUp() || use.get() == layer.getWGate() ||
             use.get() == layer.getWDown();
    }
    if (!type.getElementType().isBF16())
      return false;
    if (auto experts = dyn_cast<moe::ExpertsOp>(user))
      return use.get() == experts.getWUp() || use.get() == experts.getWGate() ||
             use.get() == experts.getWDown();
    return false;
  });
}

FailureOr<ModelSignature> mlir::moe::prepareModelEntry(ModuleOp module,
                                                       StringRef entryName,
                                                       bool cudaTarget) {
  func::FuncOp entry;
  if (!entryName.empty()) {
    entry = module.lookupSymbol<func::FuncOp>(entryName);
    if (!entry)
      return module.emitError() << "no function named '" << entryName
                                << "' to use as the model entry";
  } else {
    SmallVector<func::FuncOp> publics;
    for (auto f : module.getOps<func::FuncOp>())
      if (f.isPublic() && !f.isExternal())
        publics.push_back(f);
    if (publics.size() != 1)
      return module.emitError()
             << "expected exactly one public function as the model entry, "
                "found "
             << publics.size() << " (choose one with --entry=NAME)";
    entry = publics.front();
  }

  ModelSignature sig;
  sig.entry = entry.getSymName().str();
  if (auto grid = module.lookupSymbol<shard::GridOp>("moe_grid"))
    sig.grid.assign(grid.getShape().begin(), grid.getShape().end());
  if (auto start = entry->getAttrOfType<IntegerAttr>("moe.decoder_start")) {
    sig.decoderStart = start.getInt();
    entry->removeAttr("moe.decoder_start");
  }
  FunctionType type = entry.getFunctionType();
  // Per name, the layouts of the weights so named ("\n" for a buffer
  // that is no weight).
  llvm::StringMap<llvm::StringSet<>> names;
  auto add = [&](ModelBuffer b) -> LogicalResult {
    // One checkpoint tensor may feed two weights in different layouts (an
    // LM head tied to the embedding: the table, and its transpose); any
    // other repeated name is an error.
    bool weight = b.kind == ModelBuffer::Kind::Weight;
    llvm::StringSet<> &seen = names[b.name];
    if (seen.contains("\n") || (!seen.empty() && !weight) ||
        !seen.insert(weight ? b.layout + " " + b.quant : "\n").second)
      return entry.emitError() << "two model buffers are named '" << b.name
                               << "'";
    if (b.name.find_first_of(" \t\n") != std::string::npos || b.name.empty())
      return entry.emitError() << "model buffer name '" << b.name
                               << "' must be non-empty without whitespace";
    sig.buffers.push_back(std::move(b));
    return success();
  };
  for (unsigned i = 0; i < type.getNumInputs(); ++i) {
    ModelBuffer b;
    if (failed(bufferFromAttrs(entry, entry.getArgAttrDict(i), false, i,
                               type.getInput(i), b)))
      return failure();
    b.device = cudaTarget && onlyGpuOperand(entry.getArgument(i));
    if (failed(add(std::move(b))))
      return failure();
    // The names now live in the signature; the LLVM translation would warn
    // about the dialect attributes.
    entry.removeArgAttr(i, "moe.input");
    entry.removeArgAttr(i, "moe.weight");
    entry.removeArgAttr(i, "moe.transpose");
    entry.removeArgAttr(i, "moe.stack");
    entry.removeArgAttr(i, "moe.layout");
    entry.removeArgAttr(i, "moe.quant");
    entry.removeArgAttr(i, "moe.split");
    // Inputs and weights may live in read-only mapped files.
    entry.setArgAttr(i, bufferization::BufferizationDialect::kWritableAttrName,
                     BoolAttr::get(module.getContext(), false));
  }
  auto returnOp = entry.getBody().hasOneBlock()
                      ? dyn_cast<func::ReturnOp>(
                            entry.getBody().front().getTerminator())
                      : func::ReturnOp();
  for (unsigned i = 0; i < type.getNumResults(); ++i) {
    ModelBuffer b;
    if (failed(bufferFromAttrs(entry, entry.getResultAttrDict(i), true, i,
                               type.getResult(i), b)))
      return failure();
    // Written on the GPU: the result of a whole-GPU layer used only here.
    Value v = returnOp ? returnOp.getOperand(i) : Value();
    // A partitioned layer's sum over ranks joins the fused GPU layer
    // (LayerToGPU), whose result stays on the device all the same.
    if (auto reduce = v ? v.getDefiningOp<shard::AllReduceOp>()
                        : shard::AllReduceOp()) {
      auto partial = reduce.getInput().getDefiningOp<moe::LayerOp>();
      if (partial && moe::gpuLayerSum(partial) == reduce && v.hasOneUse())
        v = reduce.getInput();
    }
    auto layer = v ? v.getDefiningOp<moe::LayerOp>() : moe::LayerOp();
    b.device = cudaTarget && layer && isGpuLayer(layer) && v.hasOneUse();
    // The logits of a GPU LM head stay on the device (the generator reads
    // the rows it samples from).
    if (auto round = v ? v.getDefiningOp<linalg::GenericOp>()
                       : linalg::GenericOp())
      b.device = cudaTarget && v.hasOneUse() && moe::gpuMatmulOf(round);
    // The KV caches a GPU attention writes stay on the device.
    // (Both attention ops' first result is the output, the others caches.)
    Operation *def = v ? v.getDefiningOp() : nullptr;
    if (isa_and_nonnull<moe::AttentionOp, moe::MlaAttentionOp>(def))
      b.device = cudaTarget && v != def->getResult(0) && v.hasOneUse() &&
                 moe::whyNotGpuDense(def).empty();
    if (failed(add(std::move(b))))
      return failure();
    entry.removeResultAttr(i, StringAttr::get(module.getContext(), "moe.output"));
  }
  // The GPU helpers skip the copies of buffers the model keeps on the
  // device (positions in bare-pointer order: inputs, then outputs).
  SmallVector<int64_t> device;
  for (auto [i, b] : llvm::enumerate(sig.buffers))
    if (b.device)
      device.push_back(int64_t(i));
  if (!device.empty())
    entry->setAttr(kDeviceBuffersAttr,
                   DenseI64ArrayAttr::get(module.getContext(), device));
  return sig;
}

/// Whether a call of the lowered entry only queues work on the GPU, so that
/// a CUDA graph captured from one call replays any later call: its buffers
/// other than inputs are on the device, and the entry and every function it
/// calls is one block of constants, address arithmetic, kernel launches and
/// calls into the runtime's GPU ABI (mgpu*, moert_cuda_*). No host loads
/// or stores (a position read on the host would be frozen into the graph),
/// no branches, no other calls (host code that computes, or waits for the
/// GPU). Sets `why` to the first op that is not.
static bool queuesOnlyDeviceWork(ModuleOp module, LLVM::LLVMFuncOp entry,
                                 const ModelSignature &signature,
                                 std::string &why) {
  for (const ModelBuffer &b : signature.buffers)
    if (!b.device && b.kind != ModelBuffer::Kind::Input) {
      why = "buffer '" + b.name + "' is on the host";
      return false;
    }
  SmallVector<LLVM::LLVMFuncOp> work{entry};
  llvm::SmallPtrSet<Operation *, 16> seen{entry};
  while (!work.empty()) {
    LLVM::LLVMFuncOp fn = work.pop_back_val();
    if (!llvm::hasSingleElement(fn.getBody())) {
      why = "'" + fn.getName().str() + "' branches on the host";
      return false;
    }
    for (Operation &op : fn.getBody().front()) {
      if (isa<LLVM::ConstantOp, LLVM::ZeroOp, LLVM::UndefOp, LLVM::PoisonOp,
              LLVM::GEPOp, LLVM::PtrToIntOp, LLVM::IntToPtrOp,
              LLVM::BitcastOp, LLVM::InsertValueOp, LLVM::ExtractValueOp,
              LLVM::AddOp, LLVM::SubOp, LLVM::MulOp, LLVM::UDivOp,
              LLVM::SDivOp, LLVM::URemOp, LLVM::SRemOp, LLVM::AndOp,
              LLVM::OrOp, LLVM::XOrOp, LLVM::ShlOp, LLVM::LShrOp,
              LLVM::AShrOp, LLVM::ICmpOp, LLVM::SelectOp, LLVM::SExtOp,
              LLVM::ZExtOp, LLVM::TruncOp, LLVM::ReturnOp,
              gpu::LaunchFuncOp>(op))
        continue;
      auto call = dyn_cast<LLVM::CallOp>(op);
      std::optional<StringRef> callee =
          call ? call.getCallee() : std::nullopt;
      if (callee && (callee->starts_with("mgpu") ||
                     callee->starts_with("moert_cuda_")))
        continue;
      auto fnCallee =
          callee ? module.lookupSymbol<LLVM::LLVMFuncOp>(*callee) : nullptr;
      if (fnCallee && !fnCallee.isExternal()) {
        if (seen.insert(fnCallee).second)
          work.push_back(fnCallee);
        continue;
      }
      why = "'" + op.getName().getStringRef().str() + "'" +
            (callee ? " of '" + callee->str() + "'" : std::string()) +
            " in '" + fn.getName().str() + "'";
      return false;
    }
  }
  return true;
}

namespace {
/// Adds `<prefix>_signature` (the signature's text) and `<prefix>_run` (the
/// entry called with the buffers' addresses).
LogicalResult addModelRun(ModuleOp module, ModelSignature &signature,
                          StringRef prefix, bool report) {
  MLIRContext *ctx = module.getContext();
  auto entry = module.lookupSymbol<LLVM::LLVMFuncOp>(signature.entry);
  if (!entry)
    return module.emitError() << "the lowered module has no function '"
                              << signature.entry << "'";
  size_t numBuffers = signature.buffers.size();
  if (entry.getNumArguments() != numBuffers)
    return entry.emitError() << "the lowered entry takes "
                             << entry.getNumArguments()
                             << " pointers, the signature has " << numBuffers
                             << " buffers";
  for (Type t : entry.getArgumentTypes())
    if (!isa<LLVM::LLVMPointerType>(t))
      return entry.emitError() << "the lowered entry must take bare pointers";

  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = entry.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto voidTy = LLVM::LLVMVoidType::get(ctx);

  std::string why;
  signature.capturable = queuesOnlyDeviceWork(module, entry, signature, why);
  bool onDevice = llvm::any_of(signature.buffers,
                               [](const ModelBuffer &b) { return b.device; });
  if (report && onDevice && signature.capturable)
    emitRemark(entry.getLoc())
        << "a call of the model only queues GPU work: a generator replays "
           "its steps as a CUDA graph";
  else if (report && onDevice)
    emitRemark(entry.getLoc())
        << "a call of the model does host work (" << why
        << "): its steps run without a CUDA graph";
  // const char <prefix>_signature[] = "...";
  std::string text = signature.serialize();
  text.push_back('\0');
  auto arrayTy = LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), text.size());
  LLVM::GlobalOp::create(b, loc, arrayTy, /*isConstant=*/true,
                         LLVM::Linkage::External, (prefix + "_signature").str(),
                         b.getStringAttr(text));

  // void <prefix>_run(void **buffers) { entry(buffers[0], ...); }
  auto runTy = LLVM::LLVMFunctionType::get(voidTy, {ptr});
  auto run =
      LLVM::LLVMFuncOp::create(b, loc, (prefix + "_run").str(), runTy);
  OpBuilder::InsertionGuard guard(b);
  Block *body = run.addEntryBlock(b);
  b.setInsertionPointToStart(body);
  SmallVector<Value> args;
  for (size_t i = 0; i < numBuffers; ++i) {
    Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, body->getArgument(0),
                                     ArrayRef<LLVM::GEPArg>{int32_t(i)});
    args.push_back(LLVM::LoadOp::create(b, loc, ptr, slot));
  }
  LLVM::CallOp::create(b, loc, entry, args);
  LLVM::ReturnOp::create(b, loc, ValueRange{});
  return success();
}

/// Whether `op` only declares its symbol (an external function, or an
/// external global without a value).
bool isDeclaration(Operation &op) {
  if (auto fn = dyn_cast<LLVM::LLVMFuncOp>(op))
    return fn.isExternal();
  if (auto global = dyn_cast<LLVM::GlobalOp>(op))
    return !global.getValue() && global.getInitializerRegion().empty() &&
           global.getLinkage() == LLVM::Linkage::External;
  return false;
}
} // namespace

LogicalResult mlir::moe::mergeCpuFallback(ModuleOp module, ModuleOp cpu,
                                          ModelSignature &cpuSignature) {
  MLIRContext *ctx = module.getContext();
  // Every definition gets a name of its own first: the new names, then
  // every use renamed in one walk (renaming symbol by symbol walks the
  // module once a symbol: quadratic in a whole model's functions).
  SymbolTable symbols(module);
  DenseMap<StringAttr, StringAttr> renamed;
  SmallVector<Operation *> definitions;
  for (Operation &op : cpu.getBody()->getOperations()) {
    auto sym = dyn_cast<SymbolOpInterface>(op);
    if (!sym || isDeclaration(op))
      continue;
    auto newName = StringAttr::get(ctx, "moe_cpu." + sym.getName());
    if (symbols.lookup(newName))
      return op.emitError()
             << "the GPU code already defines '" << newName.getValue()
             << "', the CPU fallback's name for '" << sym.getName() << "'";
    renamed[sym.getNameAttr()] = newName;
    definitions.push_back(&op);
  }
  AttrTypeReplacer replacer;
  replacer.addReplacement([&](SymbolRefAttr ref) -> std::optional<Attribute> {
    auto it = renamed.find(ref.getRootReference());
    if (it == renamed.end())
      return std::nullopt;
    return SymbolRefAttr::get(it->second, ref.getNestedReferences());
  });
  replacer.recursivelyReplaceElementsIn(cpu, /*replaceAttrs=*/true,
                                        /*replaceLocs=*/false,
                                        /*replaceTypes=*/false);
  for (Operation *op : definitions) {
    StringAttr name = cast<SymbolOpInterface>(op).getNameAttr();
    StringAttr newName = renamed.lookup(name);
    SymbolTable::setSymbolName(op, newName);
    if (name.getValue() == cpuSignature.entry)
      cpuSignature.entry = newName.str();
  }
  for (Operation &op : llvm::make_early_inc_range(*cpu.getBody())) {
    auto sym = dyn_cast<SymbolOpInterface>(op);
    Operation *existing = sym ? symbols.lookup(sym.getNameAttr()) : nullptr;
    if (!existing) {
      op.moveBefore(module.getBody(), module.getBody()->end());
      if (sym)
        symbols.insert(&op);
      continue;
    }
    // A declaration the GPU code has too: the same symbol, kept once.
    auto fn = dyn_cast<LLVM::LLVMFuncOp>(op);
    auto other = dyn_cast<LLVM::LLVMFuncOp>(existing);
    auto global = dyn_cast<LLVM::GlobalOp>(op);
    auto otherGlobal = dyn_cast<LLVM::GlobalOp>(existing);
    bool same = (fn && other && fn.getFunctionType() == other.getFunctionType()) ||
                (global && otherGlobal &&
                 global.getGlobalType() == otherGlobal.getGlobalType());
    if (!same)
      return op.emitError() << "the CPU fallback declares '" << sym.getName()
                            << "' unlike the GPU code";
    op.erase();
  }
  return success();
}

LogicalResult mlir::moe::addExecutableEntry(ModuleOp module,
                                            const ModelSignature &given,
                                            bool report,
                                            const ModelSignature *cpuFallback) {
  ModelSignature signature = given;
  if (failed(addModelRun(module, signature, "moe_model", report)))
    return failure();
  ModelSignature cpuSignature;
  if (cpuFallback) {
    cpuSignature = *cpuFallback;
    if (failed(addModelRun(module, cpuSignature, "moe_model_cpu",
                           /*report=*/false)))
      return failure();
  }

  MLIRContext *ctx = module.getContext();
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto i32 = IntegerType::get(ctx, 32);
  // int main(int argc, char **argv) {
  //   return moert_model_main(argc, argv, moe_model_signature, moe_model_run);
  // }
  // or, with the CPU fallback,
  //   return moert_model_main_fallback(argc, argv, moe_model_signature,
  //       moe_model_run, moe_model_cpu_signature, moe_model_cpu_run);
  SmallVector<Type> implArgs{i32, ptr, ptr, ptr};
  if (cpuFallback)
    implArgs.append({ptr, ptr});
  auto mainImplTy = LLVM::LLVMFunctionType::get(i32, implArgs);
  auto mainImpl = LLVM::LLVMFuncOp::create(
      b, loc,
      cpuFallback ? "moert_model_main_fallback" : "moert_model_main",
      mainImplTy);
  auto mainTy = LLVM::LLVMFunctionType::get(i32, {i32, ptr});
  auto main = LLVM::LLVMFuncOp::create(b, loc, "main", mainTy);
  Block *body = main.addEntryBlock(b);
  b.setInsertionPointToStart(body);
  SmallVector<Value> callArgs{body->getArgument(0), body->getArgument(1)};
  auto passModel = [&](StringRef prefix) {
    callArgs.push_back(LLVM::AddressOfOp::create(
        b, loc, ptr, (prefix + "_signature").str()));
    callArgs.push_back(
        LLVM::AddressOfOp::create(b, loc, ptr, (prefix + "_run").str()));
  };
  passModel("moe_model");
  if (cpuFallback)
    passModel("moe_model_cpu");
  auto call = LLVM::CallOp::create(b, loc, mainImpl, callArgs);
  LLVM::ReturnOp::create(b, loc, call.getResult());
  return success();
}
