//! Randomness comes into the engine through this trait: the system generator in the daemon,
//! a seeded one in tests so that whole conversations replay.

/// A source of random bytes.
pub trait Rng: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's generator (ring's SystemRandom).
pub struct SystemRng(ring::rand::SystemRandom);

impl Default for SystemRng {
    fn default() -> Self {
        SystemRng(ring::rand::SystemRandom::new())
    }
}

impl Rng for SystemRng {
    fn fill(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // getrandom on Linux does not fail once the pool is initialised; a failure here means
        // the machine cannot do cryptography at all.
        self.0.fill(buf).expect("system random generator failed");
    }
}

/// Deterministic generator for tests: SHA-256(seed | counter) blocks. Not for production.
pub struct TestRng {
    seed: u64,
    counter: u64,
}

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng { seed, counter: 0 }
    }
}

impl Rng for TestRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            let mut input = [0u8; 16];
            input[..8].copy_from_slice(&self.seed.to_be_bytes());
            input[8..].copy_from_slice(&self.counter.to_be_bytes());
            self.counter += 1;
            let d = ring::digest::digest(&ring::digest::SHA256, &input);
            chunk.copy_from_slice(&d.as_ref()[..chunk.len()]);
        }
    }
}
