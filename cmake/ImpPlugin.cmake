# imp_add_plugin(<name> SOURCES ... [LIBS ...] [CUDA_ARCHS <arch>...] [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
# Builds libimp_<name>.so against the imp SDK: hidden visibility and a version script (only the two extern "C"
# symbols of IMP_PLUGIN are exported), rpath to the core library, output next to the other plugins. Works in the
# imp tree and out of tree after find_package(imp).
# CUDA sources (.cu) are compiled as C++20 for CUDA_ARCHS, by default the SDK's architectures
# (IMP_CUDA_ARCHITECTURES); the architectures go into the plugin's build key, and imp loads only plugins whose
# key equals its own, so a plugin built for other architectures is refused with a message naming both.
# The project must enable the CUDA language to compile .cu sources.
# OUTPUT_DIRECTORY: where the library goes (default: IMP_PLUGIN_OUTPUT_DIR when set); NO_INSTALL: no install rule.
function(imp_add_plugin name)
  cmake_parse_arguments(P "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LIBS;CUDA_ARCHS" ${ARGN})
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

  # Export exactly the two IMP_PLUGIN symbols: hidden visibility alone leaves the weak instances of std:: templates
  # (default visibility by libstdc++'s own declaration) in the dynamic symbol table.
  set(_map "${CMAKE_CURRENT_BINARY_DIR}/imp_plugin_exports.map")
  file(CONFIGURE OUTPUT "${_map}" CONTENT "{\n  global: imp_plugin_descriptor; imp_plugin_register;\n  local: *;\n};\n")
  target_link_options(${target} PRIVATE "LINKER:--version-script=${_map}")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${_map}")

  # CUDA architectures: the plugin's device code and its build key.
  if(P_CUDA_ARCHS)
    set(_archs ${P_CUDA_ARCHS})
  else()
    set(_archs ${IMP_CUDA_ARCHITECTURES})
  endif()
  string(REPLACE ";" "+" _key_archs "${_archs}")
  target_compile_definitions(${target} PRIVATE "IMP_PLUGIN_CUDA_ARCHS=\"${_key_archs}\"")
  set(_has_cuda OFF)
  foreach(_s ${P_SOURCES})
    if(_s MATCHES "\\.cu$")
      set(_has_cuda ON)
    endif()
  endforeach()
  if(_has_cuda)
    # One CUDA runtime in the process: the shared libcudart the core uses, not a static copy per plugin.
    # CMake 3.25 has no flag for CUDA_STANDARD 20 with nvcc: ask for 17 (not required, so no flag) and pass -std=c++20.
    set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES "${_archs}" CUDA_RUNTIME_LIBRARY Shared
      CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED OFF)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
    target_link_libraries(${target} PRIVATE CUDA::cudart)
  endif()

  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY})
  elseif(DEFINED IMP_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${IMP_PLUGIN_OUTPUT_DIR})
  endif()
  if(P_NO_INSTALL)
  elseif(COMMAND imp_plugin_install_hook)
    imp_plugin_install_hook(${target})
  else()
    include(GNUInstallDirs)
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/imp/plugins)
  endif()
endfunction()
