// A raw number is no bandwidth (gigabits or gigabytes?): the second spelling must not compile.
#include "railcc/units.hpp"
#ifdef RAILCC_EXPECT_COMPILES
railcc::Bandwidth b = railcc::Bandwidth::gbps(400.0);
#else
railcc::Bandwidth b = 400.0;
#endif
