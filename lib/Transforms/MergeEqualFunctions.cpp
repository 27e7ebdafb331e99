//===- MergeEqualFunctions.cpp - One of each set of equal functions -------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MERGEEQUALFUNCTIONS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
/// A hash that structurally equal functions share: the signature and each
/// operation's name, attributes, properties and types in walk order (no
/// locations, no value identities).
llvm::hash_code structuralHash(func::FuncOp fn) {
  llvm::hash_code hash = hash_value(fn.getFunctionType());
  fn.getBody().walk([&](Operation *op) {
    hash =
        llvm::hash_combine(hash, OperationEquivalence::computeHash(
                                     op, OperationEquivalence::ignoreHashValue,
                                     OperationEquivalence::ignoreHashValue,
                                     OperationEquivalence::IgnoreLocations));
  });
  return hash;
}

/// Whether `a` and `b` are interchangeable: every property but the name (the
/// signature, argument and result attributes, visibility, no_inline), the
/// other attributes, and the bodies.
bool structurallyEqual(func::FuncOp a, func::FuncOp b) {
  return a.getFunctionType() == b.getFunctionType() &&
         a.getArgAttrsAttr() == b.getArgAttrsAttr() &&
         a.getResAttrsAttr() == b.getResAttrsAttr() &&
         a.getSymVisibilityAttr() == b.getSymVisibilityAttr() &&
         a.getNoInline() == b.getNoInline() &&
         a->getDiscardableAttrDictionary() ==
             b->getDiscardableAttrDictionary() &&
         OperationEquivalence::isRegionEquivalentTo(
             &a.getBody(), &b.getBody(), OperationEquivalence::IgnoreLocations);
}

struct MergeEqualFunctionsPass
    : mlir::moe::impl::MergeEqualFunctionsBase<MergeEqualFunctionsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Every use of every symbol, in one walk (a walk a function would be
    // quadratic in a model's layers).
    DenseMap<StringAttr, SmallVector<Operation *>> users;
    if (std::optional<SymbolTable::UseRange> uses =
            SymbolTable::getSymbolUses(&module.getBodyRegion()))
      for (const SymbolTable::SymbolUse &use : *uses)
        users[use.getSymbolRef().getRootReference()].push_back(use.getUser());

    DenseMap<llvm::hash_code, SmallVector<func::FuncOp>> kept;
    SmallVector<func::FuncOp> erased;
    for (func::FuncOp fn : module.getOps<func::FuncOp>()) {
      if (!fn.isPrivate() || fn.isExternal())
        continue;
      auto found = users.find(fn.getSymNameAttr());
      ArrayRef<Operation *> fnUsers;
      if (found != users.end())
        fnUsers = found->second;
      if (!llvm::all_of(fnUsers, llvm::IsaPred<func::CallOp>))
        continue;
      SmallVector<func::FuncOp> &bucket = kept[structuralHash(fn)];
      auto same = llvm::find_if(bucket, [&](func::FuncOp other) {
        return structurallyEqual(other, fn);
      });
      if (same == bucket.end()) {
        bucket.push_back(fn);
        continue;
      }
      auto callee = FlatSymbolRefAttr::get(same->getSymNameAttr());
      for (Operation *user : fnUsers)
        cast<func::CallOp>(user).setCalleeAttr(callee);
      erased.push_back(fn);
    }
    for (func::FuncOp fn : erased)
      fn.erase();
    numMerged += erased.size();
  }
};
} // namespace
