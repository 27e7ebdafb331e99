//===- moe-translate.cpp - Translations into and out of moe IR -------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  mlir::moe::registerAllTranslations();
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "moe-compiler translation driver"));
}
