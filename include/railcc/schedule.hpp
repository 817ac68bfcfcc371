// railcc/schedule.hpp: schedule passes that read the fabric: QPs chosen against the ECMP
// hash, or striped over when the hash is unknown.
#pragma once

#include "railcc/schedule/chosen_qps.hpp"
#include "railcc/schedule/qp_paths.hpp"
#include "railcc/schedule/qp_striping.hpp"
