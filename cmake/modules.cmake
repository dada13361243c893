# tinyserve_module(NAME DEPS dep...): one static library per src/ folder.
# Sources: every *.cc below the folder except *_test.cc; files named *_avx2.cc and *_avx512.cc
# are compiled for that instruction set only (callers dispatch at run time).
# Tests: every *_test.cc becomes part of one GoogleTest binary NAME_test registered with ctest.
set(TINYSERVE_AVX2_FLAGS -mavx2 -mfma -mf16c -mbmi2)
set(TINYSERVE_AVX512_FLAGS -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl
    -mavx512dq -mavx512vnni -mavx512bf16)

function(tinyserve_module name)
  cmake_parse_arguments(ARG "" "" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  set(lib_srcs)
  set(test_srcs)
  foreach(src ${srcs})
    if(src MATCHES "_test\\.cc$")
      list(APPEND test_srcs ${src})
    else()
      list(APPEND lib_srcs ${src})
      # Per-ISA files keep their own translation unit: their flags must not reach the others.
      if(src MATCHES "_avx512\\.cc$")
        set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${TINYSERVE_AVX512_FLAGS}"
            SKIP_UNITY_BUILD_INCLUSION ON)
      elseif(src MATCHES "_avx2\\.cc$")
        set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${TINYSERVE_AVX2_FLAGS}"
            SKIP_UNITY_BUILD_INCLUSION ON)
      endif()
    endif()
  endforeach()
  add_library(tinyserve_${name} STATIC ${lib_srcs})
  set_target_properties(tinyserve_${name} PROPERTIES UNITY_BUILD ${TINYSERVE_UNITY_BUILD}
      UNITY_BUILD_BATCH_SIZE 0)
  target_include_directories(tinyserve_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(tinyserve_${name} PUBLIC ${ARG_DEPS})
  target_compile_definitions(tinyserve_${name} PUBLIC TINYSERVE_VERSION="${PROJECT_VERSION}")
  if(TINYSERVE_BUILD_TESTS AND test_srcs)
    add_executable(${name}_test ${test_srcs})
    set_target_properties(${name}_test PROPERTIES UNITY_BUILD ${TINYSERVE_UNITY_BUILD}
        UNITY_BUILD_BATCH_SIZE 0)
    target_link_libraries(${name}_test PRIVATE tinyserve_${name} ${ARG_TEST_DEPS}
        GTest::gtest GTest::gtest_main GTest::gmock)
    # Only tests and the CLI know the source tree (to find test data and the workload); keeping
    # the path out of the libraries' flags lets a compiler cache share them between checkouts.
    target_compile_definitions(${name}_test PRIVATE TINYSERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    # Each test is labelled with its module, so a preset can pick modules (tsan runs the
    # concurrent ones).
    gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60
        PROPERTIES ENVIRONMENT "TINYSERVE_BUILD_DIR=${PROJECT_BINARY_DIR}" LABELS ${name})
  endif()
endfunction()
