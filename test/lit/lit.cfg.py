# lit configuration of moec: runs every .mlir/.test file under test/lit with
# the tools from the build tree and FileCheck/not/split-file from LLVM 22.
import os
import lit.formats

config.name = "moec"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moec_obj_root, "test", "lit")

config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
config.substitutions.append(("%moec_src", config.moec_src_root))
config.substitutions.append(("%test_data", os.path.join(config.moec_src_root, "test", "data")))
config.substitutions.append(("%python", config.moec_python))

# Tools from the build tree first, then LLVM's FileCheck, not, split-file.
config.environment["PATH"] = os.pathsep.join(
    [config.moec_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")]
)
