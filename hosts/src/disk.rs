//! Disk space of a directory's filesystem on a host (`df -P -B1`): the host metrics read it,
//! and point-in-time restores check it before they copy a cluster.

use crate::executor::{Command, ExecError, Executor};

/// Size and available bytes of the filesystem holding `path`.
pub async fn space(exec: &impl Executor, path: &str) -> Result<(u64, u64), ExecError> {
    let out = exec.run(&Command::new("/usr/bin/df", &["-P", "-B1", path])?).await?;
    parse_df(&out.stdout).ok_or_else(|| ExecError::Invalid(format!("unexpected df output: {:?}", out.stdout)))
}

/// Size and available bytes from `df -P -B1 <path>` (the second line).
pub fn parse_df(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().nth(1)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let size = f.get(1)?.parse::<u64>().ok()?;
    let available = f.get(3)?.parse::<u64>().ok()?;
    Some((size, available))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_is_read() {
        let out = "Filesystem      1-blocks       Used   Available Capacity Mounted on\n\
                   /dev/sda1   105089261568 52544630784 47161147392      53% /var/lib/my data\n";
        assert_eq!(parse_df(out), Some((105089261568, 47161147392)));
        assert_eq!(parse_df("df: /nope: No such file or directory\n"), None);
    }
}
