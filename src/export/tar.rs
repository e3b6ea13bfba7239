//! A tar archive (POSIX ustar), written one member at a time: what WebDataset shards are.
//!
//! Every member is a regular file with mode 0644, owner 0:0 and modification time 0, so that the
//! same members give the same bytes whoever writes them and whenever. Names are at most 100
//! bytes (a uuid and an extension are 40).

use std::io::{self, Write};

/// Tar's block: headers and data are padded to it.
const BLOCK: usize = 512;

/// Writes members to `W`, then the two empty blocks that end an archive.
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter { out }
    }

    /// Appends a file `name` holding `data`.
    pub fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.out.write_all(&header(name, data.len() as u64)?)?;
        self.out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    /// Ends the archive and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The ustar header of a regular file.
fn header(name: &str, size: u64) -> io::Result<[u8; BLOCK]> {
    if name.len() > 100 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("tar member name {name:?} is over 100 bytes")));
    }
    // 11 octal digits: up to 8 GiB, far above any stored image.
    if size >= 1 << 33 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar member {name} is {size} bytes, over 8 GiB"),
        ));
    }
    let mut h = [0u8; BLOCK];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0"); // mode
    put(108, b"0000000\0"); // uid
    put(116, b"0000000\0"); // gid
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, b"00000000000\0"); // mtime
    put(148, b"        "); // the checksum counts its own field as spaces
    put(156, b"0"); // a regular file
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_padded_to_blocks_with_a_valid_checksum_and_the_archive_ends_with_two_empty_blocks() {
        let mut tar = TarWriter::new(Vec::new());
        tar.append("a.jpg", &[7u8; 600]).unwrap();
        tar.append("a.json", b"{}").unwrap();
        let bytes = tar.finish().unwrap();
        assert_eq!(bytes.len(), 512 + 1024 + 512 + 512 + 1024);
        let h = &bytes[..512];
        assert_eq!(&h[..5], b"a.jpg");
        assert_eq!(&h[124..136], b"00000001130\0", "600 bytes in octal");
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let sum: u32 =
            h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
        assert_eq!(stored, sum);
        assert!(bytes[bytes.len() - 1024..].iter().all(|&b| b == 0));
        assert!(TarWriter::new(Vec::new()).append(&"x".repeat(101), b"").is_err());
    }
}
