//! A world of ranks: MPI when launched by `mpirun`/`srun`, a single rank otherwise.
//!
//! All MPI calls happen on the main thread, before and after the actix system runs; nothing
//! here is called from an actor.

use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::collective::CommunicatorCollectives;
use mpi::traits::Root;

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
                let (msg, _status) = comm.process_at_rank(r as i32).receive_vec::<u8>();
                all.push(msg);
            }
            Some(all)
        } else {
            comm.process_at_rank(0).send(&bytes[..]);
            None
        }
    }

    pub fn barrier(&self) {
        if let Some((_, comm)) = &self.mpi {
            comm.barrier();
        }
    }
}
