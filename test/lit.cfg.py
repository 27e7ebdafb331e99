# -*- Python -*-
# lit configuration for moe-compiler's FileCheck tests.

import os

import lit.formats
from lit.llvm import llvm_config

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs", "unit", "moe-testgen", "regressions", "seeds"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.moe_tools_dir, append_path=True)

tools = ["moe-opt", "moe-translate", "moe-compile", "moe-testgen"]
llvm_config.add_tool_substitutions(tools, [config.moe_tools_dir])

config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
config.substitutions.append(
    ("%check_layer", "sh " + os.path.join(config.moe_src_root, "test", "e2e", "check-layer.sh")))

# Compiling for --target=cuda needs the CUDA toolkit's ptxas.
if config.moe_has_ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", config.moe_ptxas))

# GPU tests run only where a CUDA driver and a GPU are present.
if config.moe_has_cuda_gpu:
    config.available_features.add("cuda")
    # Models compiled for the GPU must not fall back to their CPU code here.
    config.environment["MOERT_DEVICE"] = "gpu"

# Partitioned models run under Open MPI's mpirun (one process per rank).
import shutil
if shutil.which("mpirun") and os.path.exists("/usr/lib/x86_64-linux-gnu/libmpi.so.40"):
    config.available_features.add("mpi")
config.substitutions.append(
    ("%check_ranked_layer", "sh " + os.path.join(config.moe_src_root, "test", "e2e", "check-layer-ranks.sh")))
for var in ["HOME", "TMPDIR", "OMPI_MCA_plm", "OMPI_MCA_btl"]:
    if var in os.environ:
        config.environment[var] = os.environ[var]
config.substitutions.append(("%python", "python3"))
