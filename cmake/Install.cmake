# `cmake --install build --prefix P`: the tools (P/bin), the models (P/share/meg/models), the libraries as static
# archives (P/lib), their headers by source path (P/include/meg/ir/Graph.h, .../runtime/plan/plan_generated.h) and
# the CMake package meg (P/lib/cmake/meg), so that another project can
#   find_package(meg REQUIRED CONFIG)
#   target_link_libraries(app PRIVATE meg::ir meg::train)
# Exported targets are the library names without `meg_` in the namespace `meg::` (meg_ir -> meg::ir, meg_train ->
# meg::train); the tools are imported executables (meg::megc, meg::megrun, meg::megdata, meg::megdiff). Included once, last, from
# the top-level CMakeLists.txt, when every target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MEG_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/meg)
set(MEG_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/meg) # must match $<INSTALL_INTERFACE:include/meg>

# Libraries, in dependency order (bottom first). meg_llvm and meg_plan_schema are interface targets (LLVM's include
# directories and LLVMSupport; the generated plan header and FlatBuffers'), meg_cuda_libs the CUDA libraries.
set(MEG_INSTALL_LIBRARIES meg_llvm meg_kernels_cpu meg_ir meg_plan_schema meg_plan meg_frontend meg_passes meg_comm
    meg_exec meg_io meg_data meg_backend_cpu meg_train)
if(MEG_ENABLE_CUDA)
  list(APPEND MEG_INSTALL_LIBRARIES meg_cuda_libs meg_kernels_cuda meg_cuda_precision meg_backend_cuda)
endif()
set(MEG_INSTALL_TOOLS megc megrun megdata megdiff)

foreach(lib ${MEG_INSTALL_LIBRARIES})
  string(REGEX REPLACE "^meg_" "" exportName ${lib})
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${exportName})
endforeach()
# Installed tools keep the rpath of the libraries they link outside the system directories (Debian's OpenMP build of
# OpenBLAS under .../openblas-openmp, not whichever variant the alternatives link points at; CUDA's libraries).
set_target_properties(${MEG_INSTALL_TOOLS} PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

install(TARGETS ${MEG_INSTALL_LIBRARIES} ${MEG_INSTALL_TOOLS}
  EXPORT megTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

# Headers: every header of the library folders, by source path (the headers include each other as "ir/Op.h",
# "kernels/cpu/Gelu.h", ...; ir/Ops.def and passes/Passes.def are included by headers), and the generated schema.
set(MEG_HEADER_PATTERNS FILES_MATCHING PATTERN "*.h" PATTERN "*.def")
if(NOT MEG_ENABLE_CUDA)
  list(APPEND MEG_HEADER_PATTERNS PATTERN "cuda" EXCLUDE)
endif()
foreach(dir ir frontend passes runtime kernels)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir} DESTINATION ${MEG_INSTALL_INCLUDEDIR} ${MEG_HEADER_PATTERNS})
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/runtime/plan/plan_generated.h
  DESTINATION ${MEG_INSTALL_INCLUDEDIR}/runtime/plan)

# Models and the plan schema.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/ DESTINATION ${CMAKE_INSTALL_DATADIR}/meg/models
  FILES_MATCHING PATTERN "*.json" PATTERN "*.md")
install(FILES ${PROJECT_SOURCE_DIR}/runtime/plan/plan.fbs DESTINATION ${CMAKE_INSTALL_DATADIR}/meg)

# The package: targets, config (find_dependency for what the targets link), version.
install(EXPORT megTargets NAMESPACE meg:: DESTINATION ${MEG_INSTALL_CMAKEDIR})
set(MEG_CONFIG_OPENBLAS_LIB ${OPENBLAS_LIB})
set(MEG_CONFIG_WITH_MPI ${MPI_CXX_FOUND})
set(MEG_CONFIG_WITH_CUDA ${MEG_ENABLE_CUDA})
if(NOT MEG_CONFIG_WITH_MPI)
  set(MEG_CONFIG_WITH_MPI OFF)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/megConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/megConfig.cmake
  INSTALL_DESTINATION ${MEG_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_BINDIR CMAKE_INSTALL_DATADIR MEG_INSTALL_INCLUDEDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/megConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/megConfig.cmake ${PROJECT_BINARY_DIR}/cmake/megConfigVersion.cmake
  DESTINATION ${MEG_INSTALL_CMAKEDIR})

# The test: install into a temporary prefix, build a consumer against it, run it and the installed megc.
add_subdirectory(test/install)
