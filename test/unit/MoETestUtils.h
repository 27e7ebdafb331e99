//===- MoETestUtils.h - Shared fixture for moe dialect unit tests -*- C++ -*-===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_UNIT_MOETESTUTILS_H
#define MOE_TEST_UNIT_MOETESTUTILS_H

#include "moe/Dialect/MoE/IR/MoE.h"
#include "moe/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

#include <string>

namespace moe_test {

/// Owns a context with every dialect loaded and a function whose arguments
/// are created on demand, so tests can build ops from typed values.
class MoEFixture : public ::testing::Test {
protected:
  MoEFixture() : builder(&context) {
    mlir::DialectRegistry registry;
    mlir::moe::registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    loc = builder.getUnknownLoc();
    module = mlir::ModuleOp::create(loc);
    builder.setInsertionPointToEnd(module->getBody());
    func = mlir::func::FuncOp::create(builder, loc, "f",
                                      builder.getFunctionType({}, {}));
    block = func.addEntryBlock();
    builder.setInsertionPointToEnd(block);
  }

  /// A new function argument of type tensor<shape x elt>.
  mlir::Value arg(llvm::ArrayRef<int64_t> shape, mlir::Type elt) {
    auto type = mlir::RankedTensorType::get(shape, elt);
    mlir::Value v = block->addArgument(type, loc);
    llvm::SmallVector<mlir::Type> inputs(block->getArgumentTypes());
    func.setFunctionType(builder.getFunctionType(inputs, {}));
    return v;
  }

  mlir::RankedTensorType tensor(llvm::ArrayRef<int64_t> shape, mlir::Type elt) {
    return mlir::RankedTensorType::get(shape, elt);
  }

  /// Verifies `op` and returns the first diagnostic ("" when it verifies).
  std::string verifyMessage(mlir::Operation *op) {
    std::string message;
    mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
      if (message.empty())
        message = d.str();
      return mlir::success();
    });
    if (mlir::succeeded(mlir::verify(op)))
      return "";
    return message.empty() ? "<failed without a message>" : message;
  }

  mlir::Type f32() { return builder.getF32Type(); }
  mlir::Type bf16() { return builder.getBF16Type(); }
  mlir::Type i32() { return builder.getI32Type(); }
  mlir::IntegerAttr i64(int64_t v) { return builder.getI64IntegerAttr(v); }

  mlir::MLIRContext context;
  mlir::OpBuilder builder;
  mlir::Location loc = mlir::UnknownLoc::get(&context);
  mlir::OwningOpRef<mlir::ModuleOp> module;
  mlir::func::FuncOp func;
  mlir::Block *block = nullptr;
};

} // namespace moe_test

#endif // MOE_TEST_UNIT_MOETESTUTILS_H
