//! The guard ABI's pure rules: the exports the host calls, return codes, and the `-2`
//! output-buffer growth protocol.

/// Margin left between the guard's memory and the end-of-memory buffers.
pub(crate) const FALLBACK_MARGIN: usize = 64 * 1024;

/// Return code meaning "output buffer too small".
pub(crate) const BUFFER_TOO_SMALL: i32 = -2;

/// A guard function the host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardExport {
    /// `label_agent`: policy → agent labels.
    LabelAgent,
    /// `label_resource`: tool call → resource labels.
    LabelResource,
    /// `label_response`: tool result → per-item/per-path labels.
    LabelResponse,
}

impl GuardExport {
    /// The export's name in the module.
    pub fn name(self) -> &'static str {
        match self {
            GuardExport::LabelAgent => "label_agent",
            GuardExport::LabelResource => "label_resource",
            GuardExport::LabelResponse => "label_response",
        }
    }

    /// Parses an export name.
    pub fn from_name(name: &str) -> Option<GuardExport> {
        match name {
            "label_agent" => Some(GuardExport::LabelAgent),
            "label_resource" => Some(GuardExport::LabelResource),
            "label_response" => Some(GuardExport::LabelResponse),
            _ => None,
        }
    }
}

impl std::fmt::Display for GuardExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do after the guard answered `-2` with a buffer of `current` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Regrow {
    /// Retry with a buffer of this size.
    Retry(usize),
    /// Give up: the guard needs more than `max`.
    GiveUp,
}

/// The next output buffer size: the guard's hint when it is > 0 and larger than the
/// current buffer, else double; never above `max`.
pub(crate) fn next_output_size(current: usize, hint: Option<u32>, max: usize) -> Regrow {
    let wanted = match hint {
        Some(hint) if hint > 0 && hint as usize > current => hint as usize,
        _ => current.saturating_mul(2),
    };
    if wanted <= max {
        Regrow::Retry(wanted)
    } else if current < max && hint.is_none_or(|h| h as usize <= max) {
        Regrow::Retry(max)
    } else {
        Regrow::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn hint_is_used_when_larger() {
        assert_eq!(
            next_output_size(4 * MIB, Some(5 * MIB as u32), 16 * MIB),
            Regrow::Retry(5 * MIB)
        );
    }

    #[test]
    fn no_or_zero_or_smaller_hint_doubles() {
        assert_eq!(
            next_output_size(4 * MIB, None, 16 * MIB),
            Regrow::Retry(8 * MIB)
        );
        assert_eq!(
            next_output_size(4 * MIB, Some(0), 16 * MIB),
            Regrow::Retry(8 * MIB)
        );
        assert_eq!(
            next_output_size(4 * MIB, Some(10), 16 * MIB),
            Regrow::Retry(8 * MIB)
        );
    }

    #[test]
    fn never_exceeds_max() {
        assert_eq!(
            next_output_size(12 * MIB, None, 16 * MIB),
            Regrow::Retry(16 * MIB)
        );
        assert_eq!(next_output_size(16 * MIB, None, 16 * MIB), Regrow::GiveUp);
        assert_eq!(
            next_output_size(4 * MIB, Some(17 * MIB as u32), 16 * MIB),
            Regrow::GiveUp
        );
    }

    #[test]
    fn export_names_round_trip() {
        for export in [
            GuardExport::LabelAgent,
            GuardExport::LabelResource,
            GuardExport::LabelResponse,
        ] {
            assert_eq!(GuardExport::from_name(export.name()), Some(export));
        }
        assert_eq!(GuardExport::from_name("alloc"), None);
    }
}
