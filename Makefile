# SPDX-License-Identifier: MIT
# The two commands a newcomer needs: `make run` (the demo) and `make test` (every test).
.PHONY: all build run test check clean

all: build

build:
	tools/deps
	[ -d build ] || meson setup build
	ninja -C build

run:
	tools/demo

test:
	tools/test

check:
	tools/check

clean:
	rm -rf build build-asan build-fuzz build-rig
