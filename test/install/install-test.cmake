# cmake -P driver of the install test (test/install/CMakeLists.txt passes the paths). Every step must succeed and
# print what it is expected to; the first failure ends the test with FATAL_ERROR (ctest: failed).
cmake_minimum_required(VERSION 3.20)
foreach(var MEG_BUILD_DIR MEG_SOURCE_DIR MEG_WORK_DIR MEG_CONSUMER_DIR MEG_MAKE_PROGRAM MEG_CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install test: -D${var}=... missing")
  endif()
endforeach()

set(prefix ${MEG_WORK_DIR}/prefix)
set(consumerBuild ${MEG_WORK_DIR}/consumer-build)
file(REMOVE_RECURSE ${MEG_WORK_DIR})
file(MAKE_DIRECTORY ${MEG_WORK_DIR})

# run(NAME OUT_VAR cmd...): runs cmd, fails the test with its output unless it exits 0; OUT_VAR gets stdout+stderr.
function(run name outVar)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${name} failed (${rc}):\n  ${ARGN}\n${out}")
  endif()
  message(STATUS "install test: ${name}: ok")
  set(${outVar} "${out}" PARENT_SCOPE)
endfunction()

# expect(NAME TEXT REGEX...): every regex must match TEXT.
function(expect name text)
  foreach(re ${ARGN})
    if(NOT text MATCHES "${re}")
      message(FATAL_ERROR "install test: ${name}: no match for '${re}' in:\n${text}")
    endif()
  endforeach()
endfunction()

# 1. Install into the temporary prefix.
run("cmake --install" out ${CMAKE_COMMAND} --install ${MEG_BUILD_DIR} --prefix ${prefix})
foreach(f bin/megc bin/megrun bin/megdata share/meg/models/tiny-gpt.json lib/cmake/meg/megConfig.cmake
          lib/cmake/meg/megConfigVersion.cmake lib/cmake/meg/megTargets.cmake lib/libmeg_ir.a lib/libmeg_train.a
          include/meg/ir/Graph.h include/meg/ir/Ops.def include/meg/runtime/plan/plan_generated.h
          include/meg/runtime/train/Session.h include/meg/kernels/cpu/Gelu.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "install test: ${prefix}/${f} was not installed")
  endif()
endforeach()

# 2. The installed megc on an installed model: the report, and a plan for the consumer to load.
run("megc --emit report" report ${prefix}/bin/megc ${prefix}/share/meg/models/tiny-gpt.json --emit report)
expect("megc --emit report" "${report}" "model: tiny-gpt " "param bytes per rank: [0-9]+\n")
run("megc --emit plan" out ${prefix}/bin/megc ${prefix}/share/meg/models/tiny-gpt.json --tp 2 --emit plan
    -o ${MEG_WORK_DIR}/plan)

# 3. The consumer: found from the prefix alone (no package registry, no build tree), built with Ninja.
run("consumer configure" out ${CMAKE_COMMAND} -G Ninja -S ${MEG_CONSUMER_DIR} -B ${consumerBuild}
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_MAKE_PROGRAM=${MEG_MAKE_PROGRAM} -DCMAKE_C_COMPILER=${MEG_C_COMPILER}
    -DCMAKE_CXX_COMPILER=${MEG_CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
string(REGEX REPLACE "([][+.*()^$?|\\])" "\\\\\\1" prefixRe "${prefix}")
expect("consumer configure" "${out}" "consumer: meg [0-9]+\\.[0-9]+\\.[0-9]+ from ${prefixRe}/lib/cmake/meg\n"
       "consumer: models ${prefixRe}/share/meg/models\n")
run("consumer build" out ${CMAKE_COMMAND} --build ${consumerBuild})
# Self-contained: the consumer's include directories lie in the prefix or outside meg's source and build trees.
file(READ ${consumerBuild}/compile_commands.json commands)
string(REGEX MATCHALL "-(I|isystem) *[^ \"]+" includeFlags "${commands}")
if(NOT includeFlags MATCHES "${prefixRe}/include/meg")
  message(FATAL_ERROR "install test: the consumer does not compile with ${prefix}/include/meg:\n${commands}")
endif()
foreach(flag ${includeFlags})
  string(REGEX REPLACE "^-(I|isystem) *" "" dir "${flag}")
  if(dir MATCHES "^${prefixRe}/")
    continue()
  endif()
  foreach(tree ${MEG_SOURCE_DIR} ${MEG_BUILD_DIR})
    string(FIND "${dir}/" "${tree}/" at)
    if(at EQUAL 0)
      message(FATAL_ERROR "install test: the consumer includes ${dir}, inside meg's tree ${tree}")
    endif()
  endforeach()
endforeach()

# 4. Run it: IR parse + print round trip (meg::ir), byte tokenizer (meg::data), plan set load and the CPU backend
# (meg::train, meg::backend_cpu, OpenBLAS, OpenMP).
run("consumer run" out ${consumerBuild}/consumer ${MEG_WORK_DIR}/plan)
expect("consumer run" "${out}"
  "graph @tiny mesh\\(dp=1, tp=2\\) {"
  "%2 = contract\\(%0, %1\\) {spec = \"bh,hf->bf\"} : f32\\[2,4@tp\\]"
  "round trip: identical"
  "tokens: 109 101 103"
  "plans: 2 ranks, mesh 1 x 2"
  "backend cpu: prepared rank 0 \\([0-9]+ params\\)")
message(STATUS "install test: passed")
