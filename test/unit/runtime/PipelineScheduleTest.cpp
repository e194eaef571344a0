// runtime/plan/PipelineSchedule.h: the 1F1B phases of every stage, and the loader's check of a schedule.
#include "runtime/plan/PipelineSchedule.h"

#include <gtest/gtest.h>

using namespace meg::runtime;

namespace {

std::string check(std::vector<PipePhase> phases, int m, int slots) {
  llvm::Error err = checkSchedule(phases, m, slots);
  return err ? llvm::toString(std::move(err)) : "ok";
}

TEST(PipelineSchedule, OneForwardOneBackward) {
  EXPECT_EQ(scheduleText(oneFOneB(4, 0, 8)), "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  EXPECT_EQ(scheduleText(oneFOneB(4, 3, 8)), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
  EXPECT_EQ(scheduleText(oneFOneB(4, 0, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(scheduleText(oneFOneB(1, 0, 3)), "F0 B0 F1 B1 F2 B2");
  // Every stage of every small pipeline: a valid schedule with at most min(P - r, m) in flight.
  for (int p = 1; p <= 6; ++p)
    for (int m = 1; m <= 9; ++m)
      for (int r = 0; r < p; ++r) {
        auto phases = oneFOneB(p, r, m);
        EXPECT_EQ(maxInFlight(phases), std::min(p - r, m)) << p << " " << r << " " << m;
        EXPECT_EQ(check(phases, m, activationSlots(p, r, m)), "ok");
      }
}

TEST(PipelineSchedule, CheckRefusesBadSchedules) {
  EXPECT_EQ(check({{false, 0}, {true, 0}}, 2, 1), "pipeline schedule: 2 phases for 2 micro-batches (expected 4)");
  EXPECT_EQ(check({{true, 0}, {false, 0}}, 1, 1),
            "pipeline schedule: phase 0 runs the backward of micro-batch 0 before its forward");
  EXPECT_EQ(check({{false, 1}, {false, 0}, {true, 0}, {true, 1}}, 2, 2),
            "pipeline schedule: phase 0 is F1, expected F0");
  EXPECT_EQ(check({{false, 0}, {false, 1}, {true, 0}, {true, 1}}, 2, 1),
            "pipeline schedule: phase 1: 2 micro-batches in flight, the stage has 1 activation slots");
}

} // namespace
