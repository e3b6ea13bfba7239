//! `test-origin`: the project's one test origin (DESIGN §5), used by integration tests, the demo
//! and the benchmarks. Not part of the product: the product binary never contains it.
//!
//! Many loopback hosts (`127.x.y.z`, one port each), each scripted by a [`Behaviour`] and each
//! recording what it saw in a [`RequestLog`]: arrival, completion, status, user agent, bytes.
//! Tests assert on those logs, not on what the client reports. A minimal HTTP/1.1 server written
//! directly on tokio (`http`, `server`) answers what the script decides (`respond`), serving
//! deterministic images made from the URL path (`images`). `photo` makes photo-like JPEGs for
//! codec tests and benchmarks; `rng` is the one fixed RNG behind everything generated. `nginx`
//! runs a real nginx `limit_req` per host and reads its access logs as the same `RequestLog`;
//! `process` stops a child (nginx, mpirun) with SIGTERM, then SIGKILL.
//!
//! ```no_run
//! use test_origin::{Behaviour, HostSpec, Origin};
//! let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)])?;
//! let url = origin.url(0, "/img/w800-h600-1.jpg"); // 800×600 JPEG
//! // ... download it ...
//! assert_eq!(origin.log(0).count_status(200), 1);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod behaviour;
pub mod cli;
pub mod http;
pub mod images;
pub mod log;
pub mod nginx;
pub mod photo;
pub mod process;
mod respond;
pub use respond::{image_etag, IMAGE_CHANGED_LAST_MODIFIED, IMAGE_LAST_MODIFIED};
pub mod rng;
pub mod server;

pub use behaviour::{Behaviour, BehaviourParseError, RetryAfterForm, RobotsFile, BEHAVIOUR_SYNTAX, BOMB_SIDE};
pub use log::{RequestLog, RequestRecord};
pub use nginx::{Nginx, NginxHost};
pub use server::{HostSpec, Origin};
