# MEG_FUZZ=ON: a clang build of the meg libraries with AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's
# coverage instrumentation, plus the fuzz targets of test/fuzz (scripts/fuzz.sh configures and runs it). Use a build
# directory of its own with CMAKE_CXX_COMPILER=clang++-14 and CMAKE_BUILD_TYPE=Debug (assertions on; -O1 as the
# sanitizers advise).
#
# clang 14 cannot compile LLVM 14's llvm/Support/JSON.h in C++20 mode against libstdc++ 12: libstdc++ 12 makes
# std::vector's members constexpr in C++20, clang 14 instantiates constexpr members where they are first used, and
# json::Array's inline operator[] uses std::vector<json::Value> while json::Value is still incomplete ("arithmetic on
# a pointer to an incomplete type 'llvm::json::Value'"). The fuzz build therefore compiles the real sources as C++20
# against libstdc++ 11's headers (Debian's libstdc++-11-dev, whose vector is not constexpr) and links the system's
# libstdc++.so.6, which serves both header versions.
option(MEG_FUZZ "Build the libFuzzer targets (test/fuzz) with ASan + UBSan; needs clang" OFF)
if(NOT MEG_FUZZ)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "MEG_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14)")
endif()
set(MEG_FUZZ_LIBSTDCXX_VERSION 11 CACHE STRING "libstdc++ headers the fuzz build compiles against")
set(MEG_FUZZ_CXX_INCLUDE /usr/include/c++/${MEG_FUZZ_LIBSTDCXX_VERSION})
set(MEG_FUZZ_CXX_TARGET_INCLUDE /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/c++/${MEG_FUZZ_LIBSTDCXX_VERSION})
if(NOT EXISTS ${MEG_FUZZ_CXX_INCLUDE}/vector OR NOT EXISTS ${MEG_FUZZ_CXX_TARGET_INCLUDE}/bits/c++config.h)
  message(FATAL_ERROR "MEG_FUZZ needs libstdc++ ${MEG_FUZZ_LIBSTDCXX_VERSION}'s headers in ${MEG_FUZZ_CXX_INCLUDE} "
                      "(Debian package libstdc++-${MEG_FUZZ_LIBSTDCXX_VERSION}-dev); see cmake/Fuzz.cmake")
endif()
set(MEG_FUZZ_SANITIZERS -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined)
add_compile_options(
  "$<$<COMPILE_LANGUAGE:CXX>:-nostdinc++;-isystem${MEG_FUZZ_CXX_INCLUDE};-isystem${MEG_FUZZ_CXX_TARGET_INCLUDE}>"
  ${MEG_FUZZ_SANITIZERS} -fsanitize=fuzzer-no-link -fno-omit-frame-pointer -g -O1)
add_link_options(${MEG_FUZZ_SANITIZERS})
