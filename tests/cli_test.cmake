# imp_cli_test(<name> EXIT <code> REGEX <regex> [LABELS <label>] [ENVIRONMENT <k=v>...] COMMAND <cmd> [args...])
# A test of a program's exit status and output together (tests/expect_run.cmake): a command that should succeed
# must exit 0, one that should refuse its input must exit with its error status, and a crash fails either way.
# Label cpu unless LABELS says otherwise. A ';' in REGEX stands for any character (CMake lists split at ';').
function(imp_cli_test name)
  cmake_parse_arguments(C "" "EXIT;REGEX;LABELS" "ENVIRONMENT;COMMAND" ${ARGN})
  if(NOT DEFINED C_EXIT OR NOT DEFINED C_REGEX OR NOT C_COMMAND)
    message(FATAL_ERROR "imp_cli_test(${name}): EXIT, REGEX and COMMAND are required")
  endif()
  if(NOT C_LABELS)
    set(C_LABELS cpu)
  endif()
  string(REPLACE ";" "." _re "${C_REGEX}")
  # This cmake for the tests run here; by name (found on PATH when the test runs) for the ones a GPU machine runs
  # from a staged copy of the build tree, where cmake may live elsewhere.
  set(_cmake ${CMAKE_COMMAND})
  if(NOT C_LABELS STREQUAL "cpu")
    set(_cmake cmake)
  endif()
  add_test(NAME ${name} COMMAND ${_cmake} "-DEXIT=${C_EXIT}" "-DREGEX=${_re}"
           -P ${CMAKE_SOURCE_DIR}/tests/expect_run.cmake -- ${C_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS ${C_LABELS})
  if(C_ENVIRONMENT)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${C_ENVIRONMENT}")
  endif()
endfunction()
