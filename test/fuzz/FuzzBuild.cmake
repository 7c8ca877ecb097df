#===- test/fuzz/FuzzBuild.cmake - the MOEC_FUZZ build ----------------------===#
#
# Included by the top-level CMakeLists.txt instead of its folders when
# MOEC_FUZZ is ON (scripts/fuzz.sh configures it in build-fuzz/ with clang).
# Our sources are compiled with libFuzzer's coverage instrumentation, ASan
# and UBSan; the shared libMLIR.so, libLLVM.so and libprotobuf stay as
# Debian built them. Only what the targets of test/fuzz link gets built.
#
#===------------------------------------------------------------------------===#
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "MOEC_FUZZ needs clang and its libFuzzer (Debian: "
                      "clang, libclang-rt-14-dev), but the C++ compiler is "
                      "${CMAKE_CXX_COMPILER_ID}: configure a build folder of "
                      "its own with -DCMAKE_CXX_COMPILER=clang++ "
                      "(scripts/fuzz.sh does)")
endif()
if(MOEC_SANITIZE)
  message(FATAL_ERROR "MOEC_FUZZ brings its own sanitizers (ASan + UBSan); "
                      "leave MOEC_SANITIZE off")
endif()

# UBSan findings abort (no recovery), so libFuzzer sees them as crashes;
# -g1 gives the reports file and line.
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                    -fno-sanitize-recover=all -fno-omit-frame-pointer -g1)

add_subdirectory(runtime EXCLUDE_FROM_ALL)
add_subdirectory(dialects EXCLUDE_FROM_ALL)
add_subdirectory(importers EXCLUDE_FROM_ALL)
add_subdirectory(test/fuzz)
