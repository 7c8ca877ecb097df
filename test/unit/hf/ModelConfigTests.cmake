#===- test/unit/hf/ModelConfigTests.cmake - config.json tests --------------===#
#
# ModelConfigTest: published-config parsing, transformers defaults, expected
# tensor lists, and the malformed corpus under test/data/malformed/config.
#
#===------------------------------------------------------------------------===#
add_executable(ModelConfigTest ModelConfigTest.cpp)
target_link_libraries(ModelConfigTest PRIVATE MoecHFConfig GTest::gtest_main)
gtest_discover_tests(ModelConfigTest PROPERTIES ENVIRONMENT "MOEC_TEST_DATA=${PROJECT_SOURCE_DIR}/test/data")
