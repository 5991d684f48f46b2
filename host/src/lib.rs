//! magnum-rs host: configuration, persistence, the driver plugin host, and the
//! HTTP API.

pub mod api;
pub mod app;
pub mod catalog;
pub mod certs;
pub mod conductor;
pub mod config;
pub mod db;
pub mod domain;
pub mod files;
pub mod import;
pub mod jobs;
pub mod keystone;
pub mod metrics;
pub mod microversion;
pub mod openstack;
pub mod orchestrator;
pub mod plugins;
pub mod policy;
pub mod status;
