//! Integration tests: every test runs clients against a remote database behind the slow, flaky
//! `slowfs` share. One test binary, a module per behaviour area.

mod support;

mod capture;
mod cli;
mod conflicts;
mod crash;
mod offline;
mod push_pull;
mod reliability;
mod schema_follow;
mod share_safety;
