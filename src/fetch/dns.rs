//! Name resolution for the shared client, telling a definitive "no such name" from a resolver
//! that could not answer.
//!
//! The system resolver (`getaddrinfo`, as reqwest's default uses) is asked on the blocking pool;
//! only its answer code is read differently. `EAI_NONAME` and `EAI_NODATA` are the DNS saying
//! the name has no address (NXDOMAIN, or no A/AAAA record): a [`NoSuchName`] error the fetch
//! classifies as `nxdomain`. Any other failure (`EAI_AGAIN`, a resolver that timed out) stays a
//! plain `dns` failure, which a later attempt may fix. Names under `.invalid` are answered
//! "no such name" at once, as RFC 6761 §6.4 asks of resolver libraries: no query leaves.
//!
//! Names pinned by `RESOLVE` are answered from the pins, without a query. A resolver made
//! [`SystemResolver::public_only`] (the client for servers reached by a redirect from a public
//! host) drops loopback, private, link-local and other local addresses from its answers, and a
//! name left with none is a [`LocalOnly`] error: a public server cannot lead the crawl into the
//! cluster's own network through a name, any more than through an address in the URL.
//!
//! It does not retry or decide what a failure means for a host (`actors::server` does).

use std::ffi::{CStr, CString};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The DNS answered that `name` has no address: it does not exist, or has no A/AAAA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchName {
    pub name: String,
}

impl fmt::Display for NoSuchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the name {} does not exist (NXDOMAIN)", self.name)
    }
}

impl std::error::Error for NoSuchName {}

/// The resolver could not answer for `name` now (`EAI_AGAIN`, a failing resolver): worth
/// asking again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFailed {
    pub name: String,
    pub reason: String,
}

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to lookup address information for {}: {}", self.name, self.reason)
    }
}

impl std::error::Error for LookupFailed {}

/// A name that resolves only to local addresses, asked by a resolver that takes public ones
/// only (see the module header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOnly {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

impl fmt::Display for LocalOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.addrs.iter().map(IpAddr::to_string).collect();
        write!(
            f,
            "{} resolves only to local addresses ({}): a redirect from a public host is not followed there",
            self.name,
            addrs.join(", ")
        )
    }
}

impl std::error::Error for LocalOnly {}

/// The client's resolver: the system's, with its answers classified (see the module header).
#[derive(Debug, Clone, Default)]
pub struct SystemResolver {
    /// `RESOLVE`'s pins: lowercase name and address.
    pins: Arc<Vec<(String, IpAddr)>>,
    public_only: bool,
}

impl SystemResolver {
    /// The system's resolver, with `pins` answered first.
    pub fn new(pins: &[(String, IpAddr)]) -> SystemResolver {
        let pins = pins.iter().map(|(n, ip)| (n.trim_end_matches('.').to_ascii_lowercase(), *ip)).collect();
        SystemResolver { pins: Arc::new(pins), public_only: false }
    }

    /// The same resolver, keeping public addresses only.
    pub fn public_only(self) -> SystemResolver {
        SystemResolver { public_only: true, ..self }
    }
}

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_string();
        let (pins, public_only) = (Arc::clone(&self.pins), self.public_only);
        Box::pin(async move {
            let wanted = name.trim_end_matches('.').to_ascii_lowercase();
            let pinned: Vec<SocketAddr> =
                pins.iter().filter(|(n, _)| *n == wanted).map(|(_, ip)| SocketAddr::new(*ip, 0)).collect();
            let addrs = if !pinned.is_empty() {
                pinned
            } else if is_reserved_invalid(&name) {
                return Err(Box::new(NoSuchName { name }) as _);
            } else {
                let asked = name.clone();
                match tokio::task::spawn_blocking(move || lookup(&asked)).await {
                    Ok(Ok(addrs)) => addrs,
                    Ok(Err(e)) => return Err(e),
                    Err(join) => return Err(Box::new(join) as _),
                }
            };
            if !public_only {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let (local, public): (Vec<SocketAddr>, Vec<SocketAddr>) =
                addrs.into_iter().partition(|a| crate::fetch::redirect::is_local_ip(a.ip()));
            if public.is_empty() {
                return Err(Box::new(LocalOnly { name, addrs: local.iter().map(SocketAddr::ip).collect() }) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// `invalid` itself or a name under it (case-insensitive, a trailing dot allowed).
pub fn is_reserved_invalid(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "invalid" || name.ends_with(".invalid")
}

type LookupResult = Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>>;

/// `getaddrinfo(name)` for TCP, with the port left 0 for the client to fill in.
fn lookup(name: &str) -> LookupResult {
    let c_name = CString::new(name).map_err(|_| Box::new(NoSuchName { name: name.to_string() }))?;
    // SAFETY: a zeroed addrinfo is the documented "no hints" value; the fields set are plain ints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `c_name` and `hints` outlive the call; `list` is written only on success and
    // freed below with freeaddrinfo, once.
    let code = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if code != 0 {
        if code == libc::EAI_NONAME || code == libc::EAI_NODATA {
            return Err(Box::new(NoSuchName { name: name.to_string() }));
        }
        // SAFETY: gai_strerror returns a static, NUL-terminated message for any code.
        let reason = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }.to_string_lossy().into_owned();
        return Err(Box::new(LookupFailed { name: name.to_string(), reason }));
    }
    let mut addrs = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getaddrinfo returned, not yet freed.
        let info = unsafe { &*node };
        if let Some(addr) = socket_addr(info) {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        node = info.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok(addrs)
}

fn socket_addr(info: &libc::addrinfo) -> Option<SocketAddr> {
    if info.ai_addr.is_null() {
        return None;
    }
    match info.ai_family {
        libc::AF_INET => {
            // SAFETY: an AF_INET entry's ai_addr points at a sockaddr_in.
            let sa = unsafe { &*(info.ai_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, 0)))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 entry's ai_addr points at a sockaddr_in6.
            let sa = unsafe { &*(info.ai_addr as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sa.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, 0, sa.sin6_flowinfo, sa.sin6_scope_id)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_invalid_are_answered_no_such_name_without_a_query() {
        for name in ["gone.invalid", "A.B.INVALID", "invalid", "museum.invalid."] {
            assert!(is_reserved_invalid(name), "{name}");
        }
        for name in ["invalid.org", "notinvalid", "museum.org", "127.0.0.1"] {
            assert!(!is_reserved_invalid(name), "{name}");
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err =
            rt.block_on(SystemResolver::default().resolve("gone.invalid".parse().unwrap())).err().expect("no address");
        let nx = err.downcast_ref::<NoSuchName>().expect("a NoSuchName error");
        assert_eq!(nx.name, "gone.invalid");
        assert_eq!(err.to_string(), "the name gone.invalid does not exist (NXDOMAIN)");
    }

    #[test]
    fn a_public_only_resolver_drops_local_addresses_and_refuses_a_name_left_with_none() {
        let pins = vec![
            ("cdn.example.net".to_string(), "127.0.0.3".parse().unwrap()),
            ("Mixed.Example.NET".to_string(), "10.0.0.7".parse().unwrap()),
            ("mixed.example.net".to_string(), "93.184.216.34".parse().unwrap()),
        ];
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ask = |r: &SystemResolver, name: &str| -> Result<Vec<IpAddr>, String> {
            rt.block_on(r.resolve(name.parse().unwrap())).map(|a| a.map(|s| s.ip()).collect()).map_err(|e| {
                assert!(e.downcast_ref::<LocalOnly>().is_some(), "{e}");
                e.to_string()
            })
        };
        let all = SystemResolver::new(&pins);
        assert_eq!(ask(&all, "cdn.example.net"), Ok(vec!["127.0.0.3".parse().unwrap()]), "pins answer first");
        let public = SystemResolver::new(&pins).public_only();
        let err = ask(&public, "CDN.example.net.").unwrap_err();
        assert!(err.contains("CDN.example.net. resolves only to local addresses (127.0.0.3)"), "{err}");
        assert_eq!(ask(&public, "mixed.example.net"), Ok(vec!["93.184.216.34".parse().unwrap()]), "public ones kept");
    }

    #[test]
    fn localhost_resolves_through_the_system_resolver_to_loopback() {
        // /etc/hosts answers it on any machine; no DNS query leaves.
        let addrs = lookup("localhost").expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0), "{addrs:?}");
    }
}
