//! skillsyncd's integration tests: one binary, so the support code (real
//! registry, fault proxy, skill image builder, sandboxed HOME) is compiled
//! once and shared.
//!
//! Needs `/usr/bin/docker-registry` (Debian package `docker-registry`) and
//! `/usr/bin/skopeo`.

mod support;

mod atomicity;
mod crash;
mod credentials;
mod daemon_service;
mod demo_layout;
mod hostile_config;
mod ownership;
mod polite;
mod service_files;
mod support_selftest;
mod sync;
mod team;
mod tls;
mod verify;
