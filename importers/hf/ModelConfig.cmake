#===- importers/hf/ModelConfig.cmake - config.json reader library ----------===#
#
# MoecHFConfig: parses and validates a Hugging Face checkpoint's config.json
# into mlir::moec::hf::ModelConfig and lists the tensors the checkpoint must
# hold. Depends on LLVM Support (llvm::json, file I/O) and on
# MoecRuntimeSupport for opening config.json (openRegularFile).
#
#===------------------------------------------------------------------------===#
add_library(MoecHFConfig ModelConfig.cpp)
target_link_libraries(MoecHFConfig PUBLIC LLVM PRIVATE MoecRuntimeSupport)
