// Adding a raw number to a bandwidth mixes units: the second spelling must not compile.
#include "railcc/units.hpp"
#ifdef RAILCC_EXPECT_COMPILES
auto b = railcc::Bandwidth::gbps(400) + railcc::Bandwidth::gbps(1.0);
#else
auto b = railcc::Bandwidth::gbps(400) + 1.0;
#endif
