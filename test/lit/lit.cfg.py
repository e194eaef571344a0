# -*- Python -*-  lit configuration for meg (LLVM 14's lit). Run through the generated build/test/lit/lit.site.cfg.py:
#   /usr/bin/python3 /usr/lib/llvm-14/build/utils/lit/lit.py -sv build/test/lit
#
# Substitutions in RUN lines:
#   megc, megrun, megdata, megdiff   the tools of this build (also first on PATH); like LLVM's tool substitutions they are replaced as
#                  whole words anywhere in a RUN line except after / . - (so not inside paths, but also inside quoted
#                  strings: write `grep USAGE`, not `grep 'USAGE: megc'`)
#   FileCheck, not, count   LLVM 14's, from /usr/lib/llvm-14/bin (also on PATH)
#   %models        the repository's models/ folder
#   %parity        the repository's test/parity/ folder (Hugging Face reference scripts)
#   %syspython     /usr/bin/python3 (Debian's, with numpy), for scripts that need no venv
#   %flatc         the flatc this build uses; %planschema  runtime/plan/plan.fbs (to edit plans through the schema)
#   %python        the parity venv's python (Debian's torch + pinned transformers); tests using it say REQUIRES: parity
# Features: parity (the venv exists), cuda (built with the CUDA backend), gpu (an NVIDIA device is visible),
#           mpi (built with MPI and mpirun found), mpi-built (megrun has --ranks mpi, mpirun or not).
import os
import shutil

import lit.formats
import lit.llvm
from lit.llvm.subst import ToolSubst

lit.llvm.initialize(lit_config, config)
from lit.llvm import llvm_config  # noqa: E402  (set by initialize)

config.name = "meg"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".test", ".mir"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.meg_obj_root, "test", "lit")

for tool in (config.meg_megc, config.meg_megrun, config.meg_megdata, config.meg_megdiff):
    if not os.path.isfile(tool):
        lit_config.fatal("%s is not built: run `ninja -C %s` first" % (tool, config.meg_obj_root))

# Tools: ours and LLVM's first on PATH, and substituted by full path in RUN lines.
llvm_config.with_environment(
    "PATH", [os.path.dirname(config.meg_megc), os.path.dirname(config.meg_megrun), os.path.dirname(config.meg_megdata),
             os.path.dirname(config.meg_megdiff), config.llvm_tools_dir],
    append_path=True)
llvm_config.add_tool_substitutions([
    ToolSubst("megc", command=config.meg_megc, unresolved="fatal"),
    ToolSubst("megrun", command=config.meg_megrun, unresolved="fatal"),
    ToolSubst("megdata", command=config.meg_megdata, unresolved="fatal"),
    ToolSubst("megdiff", command=config.meg_megdiff, unresolved="fatal"),
    ToolSubst("FileCheck", unresolved="fatal"),
    # Like LLVM: `count` and `not` only after a pipe; at the start of a command they are found on PATH.
    ToolSubst(r"\| \bcount\b", command=os.path.join(config.llvm_tools_dir, "count"), verbatim=True,
              unresolved="fatal"),
    ToolSubst(r"\| \bnot\b", command=os.path.join(config.llvm_tools_dir, "not"), verbatim=True,
              unresolved="fatal"),
], [config.llvm_tools_dir])

config.substitutions.append(("%models", os.path.join(config.meg_src_root, "models")))
config.substitutions.append(("%parity", os.path.join(config.meg_src_root, "test", "parity")))
config.substitutions.append(("%python", config.meg_parity_python))
config.substitutions.append(("%flatc", config.meg_flatc))
config.substitutions.append(("%planschema", os.path.join(config.meg_src_root, "runtime", "plan", "plan.fbs")))
# Debian's python3 (with python3-numpy), for scripts that need no venv, e.g. test/parity/compare_dumps.py.
config.substitutions.append(("%syspython", "/usr/bin/python3"))

if os.path.isfile(config.meg_parity_python):
    config.available_features.add("parity")
if config.meg_enable_cuda:
    config.available_features.add("cuda")
if os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl"):
    config.available_features.add("gpu")
if config.meg_have_mpi and shutil.which("mpirun"):
    config.available_features.add("mpi")
if config.meg_have_mpi:
    config.available_features.add("mpi-built")

# Environment of every test: MPI may run as root (CI is root) and oversubscribe 2 cores; one BLAS thread per process
# (lit already runs tests in parallel); Hugging Face never goes to the network. Open MPI 4.1 (Debian) needs nothing
# more in these containers: its default transports (self, vader shared memory) and singleton init work as they are.
for var, value in {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HOME": os.path.join(config.test_exec_root, ".hf-home"),
    "PYTHONDONTWRITEBYTECODE": "1",
}.items():
    config.environment[var] = value
