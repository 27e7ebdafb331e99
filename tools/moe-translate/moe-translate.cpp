//===- moe-translate.cpp - Translations into and out of moe IR
//-------------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/HFImport.h"
#include "moe/InitAll.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <string>
#include <vector>

int main(int argc, char **argv) {
  mlir::moe::registerAllTranslations();
  mlir::moe::registerHFImportTranslation();

  // `--import-hf DIR`: the translation reads DIR/config.json (and finds the
  // safetensors index beside it), so a directory argument becomes that file.
  std::vector<std::string> storage(argv, argv + argc);
  bool importHF = false;
  for (const std::string &a : storage)
    importHF |= a == "--import-hf" || a == "-import-hf";
  // (Not the value of `-o DIR`, which must stay an error, not a write into
  // DIR/config.json.)
  if (importHF)
    for (size_t i = 1; i < storage.size(); ++i) {
      std::string &a = storage[i];
      if (storage[i - 1] == "-o" || storage[i - 1] == "--o")
        continue;
      if (!llvm::StringRef(a).starts_with("-") &&
          llvm::sys::fs::is_directory(a)) {
        llvm::SmallString<256> path(a);
        llvm::sys::path::append(path, "config.json");
        a = std::string(path);
      }
    }
  std::vector<char *> args;
  for (std::string &a : storage)
    args.push_back(a.data());
  args.push_back(nullptr);
  return mlir::failed(mlir::mlirTranslateMain(
      argc, args.data(), "moe-compiler translation driver"));
}
