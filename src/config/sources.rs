//! The part of a [`Config`] the image sources are built from: a
//! [`SourceSettings`] filled in from `[registries]`, `[daemon]` and the
//! home directory.
//!
//! This file only copies settings across; it builds no source and does no
//! I/O beyond finding the home directory.

use std::path::PathBuf;

use crate::config::Config;
use crate::paths::Paths;
use crate::source::{EndpointSettings, SourceSettings};

impl From<&Config> for SourceSettings {
    fn from(config: &Config) -> SourceSettings {
        let endpoints = config
            .registries
            .iter()
            .map(|(key, r)| {
                let endpoint = EndpointSettings {
                    insecure: r.insecure,
                    layout: r.layout.clone(),
                    auth_file: r.auth_file.clone(),
                    ca_file: r.ca_file.clone(),
                    mirrors: r.mirrors.clone(),
                    max_requests: r.max_requests,
                    requests_per_second: r.requests_per_second,
                };
                (key.clone(), endpoint)
            })
            .collect();
        SourceSettings {
            endpoints,
            request_timeout: config.daemon.request_timeout,
            poll_interval: config.daemon.poll_interval,
            home: Paths::from_env()
                .map(|p| p.home)
                .unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}
