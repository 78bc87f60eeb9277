//! SVG flame graphs drawn by inferno, with kvmtrace's colours for guest, exit and host frames.
//!
//! inferno merges every folded line into frames before it drops those too narrow to draw; on a
//! 79 MB `-g -a` recording drawing the SVG was a third of the CPU of `kvmtrace flame` from a
//! dataset, most of it that merge (it splits each line and hashes each frame it opens) and the
//! palette over every frame, while most of the lines' frames were too narrow to be drawn.
//! [`drawable`] hands inferno lines cut after their last frame wide enough to be drawn, merged
//! where they become equal: the same SVG, byte for byte, from a fraction of the frames (the
//! tests compare the two).

use std::fmt::Write as _;
use std::io::Write;

use inferno::flamegraph::color::{Color, PaletteMap};
use rayon::prelude::*;

use crate::error::Error;
use crate::flame::{Folded, FoldedStack};
use crate::place::FastMap;

/// How to draw the SVG.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SvgOptions {
    /// Title.
    pub title: String,
    /// Subtitle.
    pub subtitle: Option<String>,
    /// Icicle graph (root at the top).
    pub inverted: bool,
    /// Omit frames narrower than this percentage of the graph's width (inferno's
    /// `--minwidth`).
    pub min_width: f64,
    /// Image width in pixels (`None`: inferno's 1200).
    pub image_width: Option<usize>,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions {
            title: "Flame Graph".into(),
            subtitle: None,
            inverted: false,
            min_width: inferno::flamegraph::defaults::MIN_WIDTH,
            image_width: None,
        }
    }
}

/// What a frame of a drawn line is (its colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Header,
    Guest,
    Exit,
    Host,
}

impl FrameKind {
    /// inferno strips these annotations from displayed names; here they only key the palette.
    fn suffix(self) -> &'static str {
        match self {
            FrameKind::Header => "_[i]",
            FrameKind::Guest => "_[j]",
            FrameKind::Exit => "_[w]",
            FrameKind::Host => "",
        }
    }

    /// The kind of a frame of a marked line ([`marked_line`]) and its name without the suffix.
    fn of_marked(frame: &str) -> (FrameKind, &str) {
        for kind in [FrameKind::Header, FrameKind::Guest, FrameKind::Exit] {
            if let Some(name) = frame.strip_suffix(kind.suffix()) {
                return (kind, name);
            }
        }
        (FrameKind::Host, frame)
    }

    /// A colour from the kind's hue, its shade from an FNV-1a hash of the name (stable across
    /// machines and runs).
    fn color(self, name: &str) -> Color {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let v1 = (h & 0xffff) as f64 / 65535.0;
        let v2 = ((h >> 16) & 0xffff) as f64 / 65535.0;
        let v3 = ((h >> 32) & 0xffff) as f64 / 65535.0;
        let c = |base: f64, span: f64, v: f64| (base + span * v) as u8;
        let (r, g, b) = match self {
            // Grey-blue structure frames.
            FrameKind::Header => (c(170.0, 30.0, v1), c(180.0, 30.0, v1), c(200.0, 30.0, v1)),
            // Guest code: aqua to blue.
            FrameKind::Guest => (c(40.0, 60.0, v1), c(140.0, 70.0, v2), c(200.0, 55.0, v3)),
            // Exits: purple.
            FrameKind::Exit => (c(180.0, 60.0, v1), c(70.0, 50.0, v1), c(200.0, 55.0, v2)),
            // Host: inferno's "hot".
            FrameKind::Host => (c(205.0, 50.0, v3), c(0.0, 230.0, v1), c(0.0, 55.0, v2)),
        };
        Color { r, g, b }
    }
}

/// The length of the longest common prefix of `a` and `b` (compared 16 bytes at a time).
fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a
        .chunks_exact(16)
        .zip(b.chunks_exact(16))
        .take_while(|(x, y)| x == y)
        .count()
        * 16;
    let tail = a.get(n..).unwrap_or_default().iter();
    n + tail
        .zip(b.get(n..).unwrap_or_default())
        .take_while(|(x, y)| x == y)
        .count()
}

/// How many leading frames (`;`-separated) stacks `a` and `b` share.
fn shared_frames(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = shared_prefix(a, b);
    let ends_frame = |s: &[u8]| s.get(n).is_none_or(|&c| c == b';');
    memchr::memchr_iter(b';', a.get(..n).unwrap_or_default()).count()
        + usize::from(ends_frame(a) && ends_frame(b))
}

/// The first `k` frames of `stack`.
fn first_frames(stack: &str, k: usize) -> &str {
    let end = k
        .checked_sub(1)
        .and_then(|k| memchr::memchr_iter(b';', stack.as_bytes()).nth(k))
        .unwrap_or(stack.len());
    stack.get(..end).unwrap_or(stack)
}

/// The text inferno reads for `s`: the kinds' suffixes on its header, guest and exit frames
/// (host frames have none), then its count(s).
fn marked_line(s: &FoldedStack) -> String {
    let l = s.layout;
    let kind_at = |k: u32| {
        if k < l.n_header {
            FrameKind::Header
        } else if k < l.n_header + l.n_guest {
            FrameKind::Guest
        } else {
            FrameKind::Exit
        }
    };
    let marked = l.n_header + l.n_guest + l.n_exit;
    let mut line = String::with_capacity(s.stack.len() + 4 * marked as usize + 24);
    let mut rest = s.stack.as_str();
    for k in 0..marked {
        let (frame, after) = match rest.split_once(';') {
            Some((f, r)) => (f, Some(r)),
            None => (rest, None),
        };
        line.push_str(frame);
        line.push_str(kind_at(k).suffix());
        match after {
            Some(r) => {
                line.push(';');
                rest = r;
            }
            None => {
                rest = "";
                break;
            }
        }
    }
    line.push_str(rest);
    // Written into the line (a String's fmt::Write cannot fail), not formatted apart.
    let _ = match s.baseline {
        Some(b) => write!(line, " {b} {}", s.count),
        None => write!(line, " {}", s.count),
    };
    line
}

/// A line's stack and count as inferno parses them (it trims the line, takes the count after
/// the last space and trims what is before it); `None` for a line it would ignore.
fn parse_line(line: &str) -> Option<(&str, u64)> {
    let (stack, n) = line.trim().rsplit_once(' ')?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let stack = stack.trim_end();
    // A stack ending in a number is a differential line's: drawn from every line.
    Some((stack, n.parse().ok()?)).filter(|_| !stack.is_empty() && !ends_in_count(stack))
}

/// Whether inferno reads the end of `stack` as a (first) count: a last space-separated token
/// of digits, with at most one `.` followed by digits (inferno's `rfind_samples` and the
/// integer parse after it).
fn ends_in_count(stack: &str) -> bool {
    let Some((_, token)) = stack.rsplit_once(' ') else {
        return false;
    };
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    let whole = match token.split_once('.') {
        Some((whole, fraction)) if digits(fraction) => whole,
        Some(_) => return false,
        None => token,
    };
    digits(whole) && whole.parse::<u64>().is_ok()
}

/// Lines from which inferno draws the same SVG as from `lines` (sorted as inferno sorts them,
/// one count each), with far fewer frames; `None` when none can be made (then `lines` are
/// drawn). They are in the order of `lines` but not sorted: inferno must take them as a flame
/// chart's, in the order given ([`draw`]).
///
/// The frames are found as inferno's merge finds them: a frame is a run of consecutive lines
/// sharing it and all frames before it (the same name can make two frames when another sorts
/// between), as wide as the counts of its lines. inferno drops a frame narrower than
/// `min_width` percent of the total, and with it everything above it. Each line is cut after
/// its frames up to the first narrow one (at least one frame, so that its count still counts)
/// and consecutive equal cuts are merged: every frame that is drawn keeps its lines, position
/// and width, and the depth of the graph is that of the deepest frame drawn, as before. A cut
/// may sort before the cut above it (`a;b` after `a;b;c;d`, when `a;b;e` is narrow): kept in
/// the lines' order, it still takes the narrow frames' place after `a;b;c`. (Cut lines kept in
/// sorted order, by keeping more frames, stayed two thirds of the lines of a test run's
/// recording: the thousands of narrow leaves after a wide sibling all kept theirs.)
fn drawable(lines: &[String], min_width: f64) -> Option<Vec<String>> {
    // Each line's stack, count, frames and frames shared with the line before: on every core.
    let parsed: Vec<(&str, u64)> = lines
        .par_iter()
        .map(|l| parse_line(l))
        .collect::<Option<_>>()?;
    let shape: Vec<(usize, usize)> = (0..parsed.len())
        .into_par_iter()
        .with_min_len(1024)
        .map(|i| {
            let stack = parsed[i].0;
            let frames = memchr::memchr_iter(b';', stack.as_bytes()).count() + 1;
            let shared = i
                .checked_sub(1)
                .map_or(0, |p| shared_frames(parsed[p].0, stack));
            (frames, shared)
        })
        .collect();
    let total = parsed
        .iter()
        .try_fold(0u64, |t, &(_, n)| t.checked_add(n))?;
    if total == 0 {
        return None;
    }
    // inferno's own arithmetic, so that exactly its narrow frames are found narrow.
    let widthpertime_pct = 100.0 / total as f64;
    let minwidth_time = min_width / widthpertime_pct;
    // Per line: the depth of its first narrow frame.
    let mut first_narrow = vec![usize::MAX; parsed.len()];
    // Open frames by depth: (start time, first line).
    let mut open: Vec<(u64, usize)> = Vec::new();
    let close =
        |open: &mut Vec<(u64, usize)>, keep: usize, time: u64, line: usize, first: &mut [usize]| {
            while open.len() > keep {
                let depth = open.len() - 1;
                let Some((start, from)) = open.pop() else {
                    break;
                };
                if ((time - start) as f64) < minwidth_time {
                    // Each (line, narrow frame) pair once: at most every frame of every line.
                    for f in first.get_mut(from..line).unwrap_or_default() {
                        *f = (*f).min(depth);
                    }
                }
            }
        };
    let mut time = 0u64;
    for (i, (&(_, n), &(frames, shared))) in parsed.iter().zip(&shape).enumerate() {
        close(&mut open, shared, time, i, &mut first_narrow);
        while open.len() < frames {
            open.push((time, i));
        }
        time += n;
    }
    close(&mut open, 0, time, parsed.len(), &mut first_narrow);

    let mut cut: Vec<(&str, u64)> = Vec::new();
    for ((&(stack, n), &(frames, _)), &narrow) in parsed.iter().zip(&shape).zip(&first_narrow) {
        let keep = narrow.clamp(1, frames);
        let mut line = first_frames(stack, keep);
        // inferno trims a line's end (a cut ending in white space would name another frame)
        // and reads a number at its end as a count.
        if line.len() < stack.len() && (line.trim_end().len() != line.len() || ends_in_count(line))
        {
            line = stack;
        }
        match cut.last_mut() {
            Some(last) if last.0 == line => last.1 += n,
            _ => cut.push((line, n)),
        }
    }
    Some(cut.par_iter().map(|(s, n)| format!("{s} {n}")).collect())
}

/// The colour of every frame of `lines` (each with `n_counts` counts), by kind: inferno is
/// handed a palette, so it draws with kvmtrace's colours.
fn palette(lines: &[String], n_counts: usize) -> PaletteMap {
    let mut palette = PaletteMap::default();
    // The palette is asked once per distinct frame (its map hashes with SipHash), and only of
    // frames a line does not share with the previous one: lines are sorted (cut ones are in
    // the order of the sorted lines they were cut from), so neighbours share most frames.
    let mut seen: FastMap<&str, ()> = FastMap::default();
    let mut prev = "";
    for l in lines {
        let mut stack = l.trim();
        for _ in 0..n_counts {
            stack = stack.rsplit_once(' ').map_or(stack, |(s, _)| s.trim_end());
        }
        let met = shared_frames(prev, stack);
        prev = stack;
        for frame in stack.split(';').skip(met) {
            if seen.insert(frame, ()).is_none() {
                let (kind, name) = FrameKind::of_marked(frame);
                palette.insert(frame, kind.color(name));
            }
        }
    }
    palette
}

/// Draws an SVG flame graph with inferno: deterministic, guest / exit / host frames in distinct
/// hues (red and blue by change for a differential graph).
pub fn render_svg(folded: &Folded, opts: &SvgOptions, writer: impl Write) -> Result<(), Error> {
    draw(folded, opts, writer, true)
}

/// [`render_svg`]; `cut` says whether inferno is handed [`drawable`] lines or every line.
fn draw(folded: &Folded, opts: &SvgOptions, writer: impl Write, cut: bool) -> Result<(), Error> {
    if folded.stacks.is_empty() {
        return Err(Error::Render(
            "nothing to draw: no stacks match the options".into(),
        ));
    }
    let t = crate::timing::phase("flame: svg: lines");
    let t1 = crate::timing::phase("flame: svg: lines: mark");
    let mut lines: Vec<String> = folded.stacks.par_iter().map(marked_line).collect();
    // A differential graph keeps every line: inferno gives a frame the change of the line
    // that opened it, which cutting would alter. Other lines are sorted here as inferno sorts
    // them (on every core), and cut.
    let differential = folded.stacks.iter().any(|s| s.baseline.is_some());
    let mut cut_lines = false;
    drop(t1);
    if !differential {
        let t1 = crate::timing::phase("flame: svg: lines: sort");
        lines.par_sort_unstable();
        drop(t1);
        let _t1 = crate::timing::phase("flame: svg: lines: cut");
        if cut && let Some(drawn) = drawable(&lines, opts.min_width) {
            lines = drawn;
            cut_lines = true;
        }
    }
    drop(t);
    let t = crate::timing::phase("flame: svg: palette");
    let mut palette = palette(&lines, if differential { 2 } else { 1 });
    drop(t);
    let _t = crate::timing::phase("flame: svg: inferno");
    let mut o = inferno::flamegraph::Options::default();
    o.title = opts.title.clone();
    o.subtitle = opts.subtitle.clone();
    o.count_name = folded.count_name.clone();
    o.deterministic = true;
    o.min_width = opts.min_width;
    o.image_width = opts.image_width;
    if opts.inverted {
        o.direction = inferno::flamegraph::Direction::Inverted;
    }
    o.palette_map = Some(&mut palette);
    let lines = lines.iter().map(String::as_str);
    if cut_lines {
        // Merged in the order given, unsorted and unchecked: inferno's flame chart, which
        // reverses its lines first.
        o.flame_chart = true;
        inferno::flamegraph::from_lines(&mut o, lines.rev(), writer)
    } else {
        // Lines sorted here are not sorted again; uncut ones (the tests' reference) inferno
        // sorts.
        o.no_sort = !differential && cut;
        inferno::flamegraph::from_lines(&mut o, lines, writer)
    }
    .map_err(|e| Error::Render(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flame::StackLayout;

    #[test]
    fn shared_prefix_of_texts() {
        let long = "VM vm;vCPU 0;guest_kernel_function;[exit EPT_VIOLATION];handle";
        assert_eq!(shared_prefix(long.as_bytes(), long.as_bytes()), long.len());
        assert_eq!(shared_prefix(long.as_bytes(), b""), 0);
        assert_eq!(shared_prefix(b"abc", b"abd"), 2);
        let other = long.replace("EPT", "EPX");
        assert_eq!(
            shared_prefix(long.as_bytes(), other.as_bytes()),
            long.find("EPT").expect("EPT") + 2
        );
        assert_eq!(shared_prefix(&long.as_bytes()[..20], long.as_bytes()), 20);
    }

    #[test]
    fn frames_shared_and_first() {
        assert_eq!(shared_frames("x;y", "x;y;z"), 2);
        assert_eq!(shared_frames("x;yy", "x;y;z"), 1);
        assert_eq!(shared_frames("x;y", "x;y"), 2);
        assert_eq!(shared_frames("", "x"), 0);
        assert_eq!(shared_frames("a", "b"), 0);
        assert_eq!(first_frames("a;b;c", 1), "a");
        assert_eq!(first_frames("a;b;c", 2), "a;b");
        assert_eq!(first_frames("a;b;c", 3), "a;b;c");
        assert_eq!(first_frames("a;b;c", 9), "a;b;c");
        assert!(ends_in_count("a;x 7"));
        assert!(ends_in_count("a;x 7.50"));
        assert!(!ends_in_count("a;x 7.5.0"));
        assert!(!ends_in_count("a;x .5"));
        assert!(!ends_in_count("a;x 7a"));
        assert!(!ends_in_count("a;x7"));
        assert!(!ends_in_count("VM g_[i];vCPU 1_[i]"));
    }

    fn svg(folded: &Folded, opts: &SvgOptions, cut: bool) -> String {
        let mut out = Vec::new();
        draw(folded, opts, &mut out, cut).expect("svg");
        String::from_utf8(out).expect("utf-8")
    }

    fn folded(stacks: Vec<FoldedStack>) -> Folded {
        Folded {
            stacks,
            count_name: "samples".into(),
            report: Default::default(),
        }
    }

    /// Host stacks (no header, guest or exit frames) and their counts.
    fn host_folded(lines: &[(&str, u64)]) -> Folded {
        folded(
            lines
                .iter()
                .map(|&(s, n)| FoldedStack {
                    stack: s.to_string(),
                    count: n,
                    baseline: None,
                    layout: StackLayout::default(),
                })
                .collect(),
        )
    }

    #[test]
    fn cut_lines_draw_what_every_line_draws() {
        // 100 samples: a frame of 3 is kept at --min-width 3, one of 2 is not. "b!" sorts
        // between "b" (a line ending there) and "b;…": inferno makes two frames of b; cuts of
        // narrow frames after wide siblings (b!, e) sort before the line above them.
        let lines = [
            ("a;b", 20),
            ("a;b!;x", 3),
            ("a;b;c", 1),
            ("a;b;c;d", 30),
            ("a;b;e", 2),
            ("a;b:x;y", 20),
            ("f g;h", 4),
            ("f g", 20),
        ];
        let f = host_folded(&lines);
        let mut sorted = f.stacks.iter().map(marked_line).collect::<Vec<_>>();
        sorted.sort_unstable();
        for min_width in [0.0, 0.5, 2.0, 3.0, 4.0, 10.0, 40.0, 100.0] {
            let opts = SvgOptions {
                min_width,
                ..SvgOptions::default()
            };
            assert_eq!(svg(&f, &opts, true), svg(&f, &opts, false), "{min_width}");
            // Lines were cut once a frame is narrow (e, 2 wide, from 3 %).
            let cut = drawable(&sorted, min_width).expect("cut");
            assert_eq!(
                cut.concat().len() < sorted.concat().len(),
                min_width >= 3.0,
                "{min_width}: {cut:?}"
            );
        }
        // At 10 %: b! (3 wide), e (2) and h (4) are cut, "a" and "a;b" after wider lines than
        // theirs, and "f g" takes h's count.
        let cut = drawable(&sorted, 10.0).expect("cut");
        let want = [
            "a;b 20",
            "a 3",
            "a;b:x;y 20",
            "a;b;c 1",
            "a;b;c;d 30",
            "a;b 2",
            "f g 24",
        ];
        assert_eq!(cut, want);
    }

    /// Real stacks: a `perf record -a -g` of this project's machine (symbols from the machine
    /// running the test) and the generated host+guest scenario's ground truth, at inferno's
    /// default width and a wider one.
    #[test]
    fn cut_lines_of_real_stacks_draw_what_every_line_draws() {
        let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        let tmp = tempfile::tempdir().expect("tmp");
        let mut o = kvmtrace_ingest::Options::default();
        o.output = tmp.path().join("ds");
        kvmtrace_ingest::run(&testdata.join("host-tid-minus-1.data"), &o).expect("ingest");
        let ds = crate::Dataset::open(&o.output).expect("open");
        let host = crate::flame::fold(&ds, &crate::flame::Options::default()).expect("fold");
        let truth =
            std::fs::read_to_string(testdata.join("synth-small/folded.txt")).expect("truth");
        let synth = folded(
            truth
                .lines()
                .filter_map(|l| l.rsplit_once(' '))
                .map(|(stack, n)| FoldedStack {
                    stack: stack.to_string(),
                    count: n.parse().expect("count"),
                    baseline: None,
                    layout: StackLayout {
                        n_header: 2,
                        ..StackLayout::default()
                    },
                })
                .collect(),
        );
        // (stacks, whether the default width cuts them: the generated graph has no frame
        // under 0.01 %)
        for (f, cut_at_default) in [(&host, true), (&synth, false)] {
            assert!(f.stacks.len() > 50, "{}", f.stacks.len());
            let mut sorted = f.stacks.iter().map(marked_line).collect::<Vec<_>>();
            sorted.sort_unstable();
            for (min_width, cuts) in [
                (SvgOptions::default().min_width, cut_at_default),
                (0.5, true),
            ] {
                let opts = SvgOptions {
                    min_width,
                    ..SvgOptions::default()
                };
                assert_eq!(svg(f, &opts, true), svg(f, &opts, false), "{min_width}");
                let cut = drawable(&sorted, min_width).expect("cut");
                assert_eq!(
                    cut.concat().len() < sorted.concat().len(),
                    cuts,
                    "{min_width}: {} of {} lines",
                    cut.len(),
                    sorted.len()
                );
            }
        }
    }

    /// inferno takes a line whose stack ends in a number for a differential line (`stack
    /// before after`) and trims a line's end: a cut after a frame named like `x 7` or `w `
    /// must not end there.
    #[test]
    fn a_cut_never_ends_in_a_number_or_a_space() {
        let f = host_folded(&[
            ("a;x 7;y", 10),
            ("a;x 7;z", 90),
            ("b;w ;y", 10),
            ("b;w ;z", 90),
        ]);
        let opts = SvgOptions {
            min_width: 20.0,
            ..SvgOptions::default()
        };
        assert_eq!(svg(&f, &opts, true), svg(&f, &opts, false));
    }

    proptest::proptest! {
        #[test]
        fn cut_lines_draw_what_every_line_draws_generated(
            stacks in proptest::collection::vec(
                (
                    proptest::collection::vec(
                        proptest::sample::select(vec!["a", "b", "b!", "b:x", "b x", "b 7", "c ", "B", "c", "VM v"]),
                        1..6,
                    ),
                    1u64..60,
                    0u32..3,
                    0u32..2,
                ),
                1..40,
            ),
            min_width in proptest::sample::select(vec![0.01, 1.0, 3.0, 8.0, 25.0]),
            inverted in proptest::bool::ANY,
        ) {
            let mut by_stack = std::collections::BTreeMap::new();
            for (frames, n, n_header, n_guest) in stacks {
                let stack = frames.join(";");
                let layout = StackLayout { n_header, n_guest, n_exit: 0 };
                by_stack.entry(stack).or_insert((n, layout));
            }
            let f = folded(
                by_stack
                    .into_iter()
                    .map(|(stack, (count, layout))| FoldedStack { stack, count, baseline: None, layout })
                    .collect(),
            );
            let opts = SvgOptions { min_width, inverted, ..SvgOptions::default() };
            proptest::prop_assert_eq!(svg(&f, &opts, true), svg(&f, &opts, false));
        }
    }
}
