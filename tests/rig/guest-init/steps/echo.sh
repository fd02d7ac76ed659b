#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest step: the smallest step, a template for new ones (exit 0 pass, non-zero fail).
echo "@@GUEST echo kernel=$(uname -r)"
