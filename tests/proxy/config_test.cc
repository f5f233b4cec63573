// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>
#include "config.h"
TEST(ProxyConfigTest, Stub) {}
