#pragma once
// Entry point of the operator CLI: `varve topic|group|cluster|config|produce|consume|perf ...`.
// See docs/cli.md for every command, its options and its output.
namespace varve::cli {

// Runs the command in argv[1..] and returns the process exit code: 0 on success, 1 when
// the command failed (the broker's error is printed), 2 on a usage error.
int run(int argc, char** argv);

}  // namespace varve::cli
