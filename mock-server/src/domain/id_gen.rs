//! Ids the mock makes up itself (new records; correlation ids in their own range). Injected so that
//! the default mode is sequential and a journal repeats from run to run.

use uuid::Uuid;

/// Makes ids: sequential (deterministic, the default) or random.
#[derive(Debug, Clone)]
pub enum IdGenerator {
    /// `00000000-0000-4000-8000-{seed:4 hex}{n:8 hex}`: readable and repeatable.
    Sequential {
        /// Distinguishes sandboxes so their ids do not collide.
        seed: u16,
        /// Last number handed out.
        next: u64,
    },
    /// Version-4 GUIDs.
    Random,
}

impl IdGenerator {
    /// A sequential generator.
    pub fn sequential(seed: u16) -> Self {
        Self::Sequential { seed, next: 0 }
    }

    /// The `n`th correlation id of the sandbox `seed`: `00000000-0000-4000-9000-{seed:4 hex}{n:8 hex}`,
    /// so a correlation id never equals an id of something created.
    pub fn correlation(seed: u16, n: u64) -> Uuid {
        let low = (u64::from(seed) << 32) | (n & 0xFFFF_FFFF);
        Uuid::from_u128((0x4000u128 << 64) | (0x9000u128 << 48) | u128::from(low))
    }

    /// The next id.
    pub fn next_id(&mut self) -> Uuid {
        match self {
            Self::Sequential { seed, next } => {
                *next += 1;
                let low = (u64::from(*seed) << 32) | (*next & 0xFFFF_FFFF);
                Uuid::from_u128((0x4000u128 << 64) | (0x8000u128 << 48) | u128::from(low))
            }
            Self::Random => Uuid::new_v4(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_repeat_from_run_to_run_and_differ_between_seeds() {
        let mut a = IdGenerator::sequential(1);
        let mut b = IdGenerator::sequential(1);
        let mut c = IdGenerator::sequential(2);
        let (a1, b1, c1) = (a.next_id(), b.next_id(), c.next_id());
        assert_eq!(a1, b1);
        assert_ne!(a1, c1);
        assert_ne!(a1, a.next_id());
        assert_eq!(a1.to_string(), "00000000-0000-4000-8000-000100000001");
        assert_eq!(IdGenerator::correlation(1, 1).to_string(), "00000000-0000-4000-9000-000100000001");
    }
}
