# imp_add_plugin(<name> SOURCES ... [LIBS ...])
# Builds libimp_<name>.so against the imp SDK: hidden visibility (only the Boost.DLL aliases are exported),
# rpath to the core library, output next to the other plugins. Works in the imp tree and out of tree after
# find_package(imp).
function(imp_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  set(target imp_${name})
  add_library(${target} MODULE ${P_SOURCES})
  if(TARGET imp::imp_core)
    target_link_libraries(${target} PRIVATE imp::imp_core ${P_LIBS})
  else()
    target_link_libraries(${target} PRIVATE imp_core ${P_LIBS})
  endif()
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME imp_${name}
    PREFIX lib
    CXX_STANDARD 20
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON
    INSTALL_RPATH "$ORIGIN/../.."
    BUILD_RPATH "$ORIGIN/../..")
  if(DEFINED IMP_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${IMP_PLUGIN_OUTPUT_DIR})
  endif()
  if(COMMAND imp_plugin_install_hook)
    imp_plugin_install_hook(${target})
  else()
    include(GNUInstallDirs)
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/imp/plugins)
  endif()
endfunction()
