//! A world of ranks: MPI when launched by `mpirun`/`srun`, a single rank otherwise.
//!
//! All MPI calls happen on the main thread, before and after the actix system runs; nothing
//! here is called from an actor.

use mpi::collective::CommunicatorCollectives;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{Equivalence, Root};

/// Message tags: each kind of point-to-point message has its own, so a late message of one kind
/// is never taken for another.
const TAG_GATHER: i32 = 1;
const TAG_IDLE: i32 = 2;
const TAG_END: i32 = 3;
const TAG_PEER: i32 = 4;

/// The ranks of this job.
pub struct World {
    rank: usize,
    size: usize,
    /// `None` in a single-rank world; holding the universe keeps MPI initialised until drop.
    mpi: Option<(mpi::environment::Universe, SimpleCommunicator)>,
}

impl World {
    /// Joins the MPI world when `launched` (a launcher set up the process), else a world of one.
    pub fn init(launched: bool) -> anyhow::Result<World> {
        if !launched {
            return Ok(World::single());
        }
        let universe = mpi::initialize().ok_or_else(|| anyhow::anyhow!("MPI was already initialised"))?;
        let comm = universe.world();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        Ok(World { rank, size, mpi: Some((universe, comm)) })
    }

    /// A world of one rank, with no MPI at all.
    pub fn single() -> World {
        World { rank: 0, size: 1, mpi: None }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Rank 0's `bytes` on every rank (other ranks pass anything, e.g. empty).
    pub fn broadcast(&self, bytes: Vec<u8>) -> Vec<u8> {
        let Some((_, comm)) = &self.mpi else { return bytes };
        let root = comm.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        let mut buf = if self.is_root() { bytes } else { vec![0u8; len as usize] };
        if len > 0 {
            root.broadcast_into(&mut buf[..]);
        }
        buf
    }

    /// Every rank's `bytes`, in rank order, on rank 0; `None` on the others.
    pub fn gather(&self, bytes: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        let Some((_, comm)) = &self.mpi else { return Some(vec![bytes]) };
        if self.is_root() {
            let mut all = vec![bytes];
            for r in 1..self.size {
                let (msg, _status) = comm.process_at_rank(r as i32).receive_vec_with_tag::<u8>(TAG_GATHER);
                all.push(msg);
            }
            Some(all)
        } else {
            comm.process_at_rank(0).send_with_tag(&bytes[..], TAG_GATHER);
            None
        }
    }

    /// A rank other than 0 tells rank 0 it has no work left in `round`.
    pub fn announce_idle(&self, round: u32) {
        if let Some((_, comm)) = &self.mpi {
            if !self.is_root() {
                comm.process_at_rank(0).send_with_tag(&round, TAG_IDLE);
            }
        }
    }

    /// Rank 0 tells every other rank to end `round`.
    pub fn end_round(&self, round: u32) {
        if let Some((_, comm)) = &self.mpi {
            for r in 1..self.size {
                comm.process_at_rank(r as i32).send_with_tag(&round, TAG_END);
            }
        }
    }

    /// How many messages with `tag` about `round` have arrived, without waiting. Messages about
    /// earlier rounds are taken and dropped.
    fn poll(&self, tag: i32, round: u32) -> usize {
        let Some((_, comm)) = &self.mpi else { return 0 };
        let mut hits = 0;
        while let Some((msg, _)) = comm.any_process().immediate_matched_probe_with_tag(tag) {
            let (v, _) = msg.matched_receive::<u32>();
            hits += usize::from(v == round);
        }
        hits
    }

    /// Rank 0: how many ranks announced, since the last call, that they ran out of work in
    /// `round` (each rank announces once per round).
    pub fn poll_idle(&self, round: u32) -> usize {
        if self.is_root() {
            self.poll(TAG_IDLE, round)
        } else {
            0
        }
    }

    /// Ranks other than 0: whether rank 0 ended `round`.
    pub fn poll_end(&self, round: u32) -> bool {
        !self.is_root() && self.poll(TAG_END, round) > 0
    }

    /// Sends `bytes` to rank `to` as a peer message (a refusal seen by one share of a split host),
    /// without waiting for it to be received: messages this small go eagerly.
    pub fn send_peer(&self, to: usize, bytes: &[u8]) {
        if let Some((_, comm)) = &self.mpi {
            if to != self.rank && to < self.size {
                comm.process_at_rank(to as i32).send_with_tag(bytes, TAG_PEER);
            }
        }
    }

    /// Every peer message that has arrived, without waiting.
    pub fn poll_peers(&self) -> Vec<Vec<u8>> {
        let Some((_, comm)) = &self.mpi else { return Vec::new() };
        let mut got = Vec::new();
        while let Some((msg, status)) = comm.any_process().immediate_matched_probe_with_tag(TAG_PEER) {
            let len = status.count(u8::equivalent_datatype()).max(0) as usize;
            let mut bytes = vec![0u8; len];
            msg.matched_receive_into(&mut bytes[..]);
            got.push(bytes);
        }
        got
    }

    pub fn barrier(&self) {
        if let Some((_, comm)) = &self.mpi {
            comm.barrier();
        }
    }
}
