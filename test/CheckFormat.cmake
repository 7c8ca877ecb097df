#===- test/CheckFormat.cmake - fail on any clang-format difference ---------===#
# Run as `cmake -DCLANG_FORMAT=... -DSOURCE_DIR=... -P CheckFormat.cmake`.
file(GLOB_RECURSE sources RELATIVE ${SOURCE_DIR}
     ${SOURCE_DIR}/dialects/*.cpp ${SOURCE_DIR}/dialects/*.h
     ${SOURCE_DIR}/importers/*.cpp ${SOURCE_DIR}/importers/*.h
     ${SOURCE_DIR}/passes/*.cpp ${SOURCE_DIR}/passes/*.h
     ${SOURCE_DIR}/codegen/*.cpp ${SOURCE_DIR}/codegen/*.h
     ${SOURCE_DIR}/runtime/*.cpp ${SOURCE_DIR}/runtime/*.h
     ${SOURCE_DIR}/tools/*.cpp ${SOURCE_DIR}/tools/*.h
     ${SOURCE_DIR}/test/*.cpp ${SOURCE_DIR}/test/*.h
     ${SOURCE_DIR}/bench/*.cpp ${SOURCE_DIR}/bench/*.h)
set(bad "")
foreach(source ${sources})
  execute_process(COMMAND ${CLANG_FORMAT} --dry-run -Werror ${source}
                  WORKING_DIRECTORY ${SOURCE_DIR}
                  RESULT_VARIABLE status OUTPUT_QUIET ERROR_QUIET)
  if(NOT status EQUAL 0)
    list(APPEND bad ${source})
  endif()
endforeach()
list(LENGTH sources count)
if(bad)
  string(REPLACE ";" "\n  " bad "${bad}")
  message(FATAL_ERROR "clang-format would change these files (run "
                      "`clang-format -i` on them):\n  ${bad}")
endif()
message(STATUS "clang-format: ${count} files clean")
