//! Specialised WGSL: a kernel's override constants written into its source as `const`s, and the loops it marks
//! `// unroll` expanded, before naga sees it. One module per (shader, override values) instead of one per shader.
//!
//! Why: on llvmpipe the same kernel with its constant-trip loops over private arrays expanded in the source,
//! every index a constant, runs 1.2–2× faster (fused attention, Winograd transforms, the private FFT; figures in
//! docs/bench-history.md). Why the driver does not get there itself is not established: Mesa's NIR unrolls
//! only loops under a size limit, and gallivm's loop trip counter (the 65,535 limit in docs/llvmpipe-stores.md)
//! may keep LLVM from doing more. Expanding costs compile time (a line-64 FFT took llvmpipe seconds), so a
//! marker can cap the trips it expands. GPU compilers unroll such loops themselves.
//!
//! The marker: a line whose text is `// unroll` makes the next statement, which must read
//! `for (var X = A; X < B; X++) { body }`, into `{ body[X := A] }{ body[X := A+1] }…` (each copy its own block,
//! so its `let`s do not clash). A is an integer literal (`0u`, `0i`, `0`); B is integer literals and names
//! joined by `*` and `/` (`D * EB4`, `N / 2u`), the names overrides (the kernel key's value, else the default)
//! or module-scope `const`s whose value is such an expression. Bodies with `break` or `continue` are refused
//! (they would mean something else once expanded). `// unroll L` expands only loops of at most L trips (default
//! and cap [`MAX_COPIES`]) and leaves longer ones loops, marker dropped. Markers inside an expanded body are
//! expanded in turn. A shader without a marker is compiled as written, its overrides set through the
//! pipeline's constants as usual.

use std::collections::HashMap;

/// The most copies one marked loop expands into; longer loops stay loops.
pub const MAX_COPIES: i64 = 256;

const MARKER: &str = "// unroll";

/// Whether `source` asks to be specialised (has an unroll marker).
pub fn wants_specialising(source: &str) -> bool {
    source.lines().any(|l| marker_limit(l).is_some())
}

/// `Some(limit)` if `line` is a marker: `// unroll` (limit [`MAX_COPIES`]) or `// unroll L`.
fn marker_limit(line: &str) -> Option<i64> {
    let rest = line.trim().strip_prefix(MARKER)?.trim();
    if rest.is_empty() {
        Some(MAX_COPIES)
    } else {
        rest.parse::<i64>().ok().map(|l| l.min(MAX_COPIES))
    }
}

/// `source` with every override in `overrides` turned into a `const` of that value and every marked loop
/// expanded. Errors name the override or the loop (its first line) that cannot be specialised.
pub fn specialize(source: &str, overrides: &[(&str, f64)]) -> Result<String, String> {
    let mut consts: HashMap<String, i64> = HashMap::new();
    let mut out = String::with_capacity(source.len() * 2);
    let mut used = vec![false; overrides.len()];
    for line in source.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("override ") {
            let (name, ty) = decl_name_type(rest).ok_or_else(|| format!("cannot read the override `{}`", t.trim()))?;
            if let Some(i) = overrides.iter().position(|(k, _)| *k == name) {
                let ty = ty.ok_or_else(|| format!("override `{name}` needs a type to be specialised"))?;
                let v = overrides[i].1;
                let lit = literal(&ty, v).ok_or_else(|| format!("override `{name}`: {v} is not a {ty}"))?;
                if let Ok(n) = int_literal(&lit) {
                    consts.insert(name.clone(), n);
                }
                out.push_str(&format!("const {name}: {ty} = {lit};\n"));
                used[i] = true;
                continue;
            }
            // not set by the key: the pipeline would take the default, so a loop may expand by it too
            if let Some(n) = initializer(rest).and_then(|v| constant(v, &consts)) {
                consts.insert(name, n);
            }
        } else if let Some(rest) = t.strip_prefix("const ") {
            if let (Some((name, _)), Some(n)) =
                (decl_name_type(rest), initializer(rest).and_then(|v| constant(v, &consts)))
            {
                consts.insert(name, n);
            }
        }
        out.push_str(line);
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format!("the key sets override `{}`, which the shader does not declare", overrides[i].0));
    }
    while let Some(at) = find_marker(&out) {
        out = expand_at(&out, at, &consts)?;
    }
    Ok(out)
}

/// `NAME: TYPE = …;` or `NAME = …;` → (NAME, Some(TYPE) / None).
fn decl_name_type(rest: &str) -> Option<(String, Option<String>)> {
    let head = rest.split(['=', ';']).next()?.trim();
    let (name, ty) = match head.split_once(':') {
        Some((n, t)) => (n.trim(), Some(t.trim().to_string())),
        None => (head, None),
    };
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| (name.to_string(), ty))
}

/// The initializer of `NAME: T = value; // …`, if any.
fn initializer(rest: &str) -> Option<&str> {
    Some(rest.split_once('=')?.1.split(';').next()?.trim())
}

/// The WGSL literal for `v` as a `ty` (u32, i32, f32 or bool).
fn literal(ty: &str, v: f64) -> Option<String> {
    let int = v.fract() == 0.0;
    match ty {
        "u32" if int && (0.0..=u32::MAX as f64).contains(&v) => Some(format!("{}u", v as u64)),
        "i32" if int && (i32::MIN as f64..=i32::MAX as f64).contains(&v) => Some(format!("{}i", v as i64)),
        "f32" if v.is_finite() => Some(format!("{:?}f", v as f32)),
        "bool" => Some((v != 0.0).to_string()),
        _ => None,
    }
}

fn int_literal(s: &str) -> Result<i64, ()> {
    s.trim_end_matches(['u', 'i']).parse::<i64>().map_err(|_| ())
}

/// Byte offset of the first marker line's start.
fn find_marker(s: &str) -> Option<usize> {
    let mut at = 0;
    for line in s.split_inclusive('\n') {
        if marker_limit(line).is_some() {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// Expands the loop after the marker line that starts at byte `at`.
fn expand_at(s: &str, at: usize, consts: &HashMap<String, i64>) -> Result<String, String> {
    let after_marker = at + s[at..].find('\n').map_or(s.len() - at, |i| i + 1);
    let stmt = s[after_marker..].trim_start();
    let start = s.len() - stmt.len();
    let first_line = stmt.lines().next().unwrap_or("").trim().to_string();
    let err = |why: &str| format!("cannot unroll `{first_line}`: {why}");
    let header = stmt.strip_prefix("for").map(str::trim_start).filter(|h| h.starts_with('('));
    let header = header.ok_or_else(|| err("a `// unroll` line must precede a `for` statement"))?;
    let close = header.find(')').ok_or_else(|| err("no `)` closes the header"))?;
    let parts: Vec<&str> = header[1..close].split(';').map(str::trim).collect();
    let [init, cond, step] = parts[..] else { return Err(err("the header is not `var X = A; X < B; X++`")) };
    let (var, a) = init
        .strip_prefix("var ")
        .and_then(|r| r.split_once('='))
        .map(|(v, a)| (v.trim(), a.trim()))
        .ok_or_else(|| err("the init is not `var X = A`"))?;
    let suffix = ["u", "i"].into_iter().find(|x| a.ends_with(x)).unwrap_or("");
    let a = int_literal(a).map_err(|_| err("the start is not an integer literal"))?;
    let b = cond
        .strip_prefix(var)
        .and_then(|r| r.trim_start().strip_prefix('<'))
        .map(str::trim)
        .filter(|b| !b.starts_with('='))
        .ok_or_else(|| err("the condition is not `X < B`"))?;
    let b = constant(b, consts).ok_or_else(|| err("the bound is not a constant"))?;
    if step != format!("{var}++") && step.replace(' ', "") != format!("{var}+=1{suffix}") {
        return Err(err("the step is not `X++`"));
    }
    if b - a > marker_limit(&s[at..after_marker]).unwrap_or(MAX_COPIES) {
        return Ok(format!("{}{}", &s[..at], &s[after_marker..])); // too long: stays a loop, marker dropped
    }
    let rest = header[close + 1..].trim_start();
    let body_open = s.len() - rest.len();
    if !rest.starts_with('{') {
        return Err(err("the body is not a `{ … }` block"));
    }
    let body_close = matching_brace(s, body_open).ok_or_else(|| err("the body's `{` is not closed"))?;
    let body = &s[body_open + 1..body_close];
    if has_word(body, "break") || has_word(body, "continue") {
        return Err(err("the body has a `break` or `continue`"));
    }
    let mut out = String::with_capacity(s.len() + body.len() * (b - a).max(0) as usize);
    out.push_str(&s[..at]);
    out.push_str(&s[after_marker..start]); // the indent
    for k in a..b {
        out.push('{');
        out.push_str(&substitute(body, var, &format!("{k}{suffix}")));
        out.push('}');
    }
    out.push_str(&s[body_close + 1..]);
    Ok(out)
}

/// The value of `e`: integer literals and known names joined by `*` and `/`, left to right (`N / 2u`, `D * EB4`).
fn constant(e: &str, consts: &HashMap<String, i64>) -> Option<i64> {
    let factor = |f: &str| int_literal(f.trim()).ok().or_else(|| consts.get(f.trim()).copied());
    let mut rest = e;
    let (mut value, mut op) = (1i64, '*');
    loop {
        let at = rest.find(['*', '/']).unwrap_or(rest.len());
        let f = factor(&rest[..at])?;
        value = if op == '*' { value.checked_mul(f)? } else { value.checked_div(f)? };
        if at == rest.len() {
            return Some(value);
        }
        op = rest.as_bytes()[at] as char;
        rest = &rest[at + 1..];
    }
}

/// Index of the `}` matching the `{` at `open`, braces inside `//` comments not counted.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let (mut depth, mut at, mut found) = (0usize, open, None);
    tokens(&s[open..], |t, _, _| {
        if found.is_none() {
            match t {
                "{" => depth += 1,
                "}" if depth == 1 => found = Some(at),
                "}" => depth -= 1,
                _ => {}
            }
        }
        at += t.len();
    });
    found
}

/// Calls `f(token, is_identifier, after_dot)` for every token of `s` (identifiers, numbers, comments and single
/// other characters), in order.
fn tokens(s: &str, mut f: impl FnMut(&str, bool, bool)) {
    let bytes = s.as_bytes();
    let (mut i, mut after_dot) = (0, false);
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < bytes.len() {
        let c = bytes[i];
        let j = if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            i + s[i..].find('\n').unwrap_or(s.len() - i)
        } else if word(c) {
            i + bytes[i..].iter().take_while(|&&c| word(c)).count()
        } else {
            i + s[i..].chars().next().map_or(1, char::len_utf8)
        };
        let tok = &s[i..j];
        let ident = c.is_ascii_alphabetic() || c == b'_';
        f(tok, ident, after_dot);
        if !c.is_ascii_whitespace() {
            after_dot = c == b'.';
        }
        i = j;
    }
}

fn has_word(s: &str, w: &str) -> bool {
    let mut found = false;
    tokens(s, |t, ident, _| found |= ident && t == w);
    found
}

/// `s` with the identifier `var` (not a member after `.`, not inside a comment or a longer name) replaced by
/// `lit`.
fn substitute(s: &str, var: &str, lit: &str) -> String {
    let mut out = String::with_capacity(s.len());
    tokens(s, |t, ident, after_dot| out.push_str(if ident && !after_dot && t == var { lit } else { t }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_become_consts_and_marked_loops_expand() {
        let src = "override D4: u32 = 4u;\noverride S: f32 = 1.0;\nconst QMAX: u32 = 2u;\n\
                   fn f() {\n    // unroll\n    for (var c = 0u; c < D4; c++) {\n        let x = a[c] + b.c; // c }\n\
                   \n        // unroll\n        for (var u = 1u; u < QMAX * 4u / 2u; u++) { y[u * c] = cc; }\n\
                   }\n}\n";
        let out = specialize(src, &[("D4", 3.0), ("S", 0.5)]).unwrap();
        assert!(out.contains("const D4: u32 = 3u;") && out.contains("const S: f32 = 0.5f;"), "{out}");
        assert!(!out.contains("for ("), "{out}");
        for k in 0..3 {
            assert!(out.contains(&format!("let x = a[{k}u] + b.c; // c")), "{out}");
            for u in 1..4 {
                assert!(out.contains(&format!("y[{u}u * {k}u] = cc;")), "{out}");
            }
        }
        assert_eq!(out.matches("let x").count(), 3);
        assert_eq!(out.matches("y[").count(), 9);
        assert!(!wants_specialising(&out));
    }

    #[test]
    fn refuses_what_it_cannot_expand_faithfully() {
        let body = |b: &str| format!("override N: u32 = 4u;\n// unroll\nfor (var i = 0u; i < N; i++) {{ {b} }}\n");
        assert!(specialize(&body("x += 1.0;"), &[("N", 4.0)]).is_ok());
        let e = specialize(&body("if x { break; }"), &[("N", 4.0)]).unwrap_err();
        assert!(e.contains("break"), "{e}");
        let derived =
            "override BM: u32 = 64u;\noverride QN = 4096u / BM / 4u; // a comment\nconst T: u32 = 2u * 1u; // x\n\
                       // unroll\nfor (var i = 0u; i < QN / T; i++) { x[i] = 0; }\n";
        let out = specialize(derived, &[("BM", 32.0)]).unwrap(); // QN = 32, T = 2
        assert!(out.contains("x[15u] = 0;") && !out.contains("x[16u]"), "{out}");
        let out = specialize(&body("x[i] += 1.0;"), &[]).unwrap(); // N not set: its default, 4
        assert!(out.contains("override N") && out.contains("x[3u]") && !out.contains("x[4u]"), "{out}");
        let e = specialize("override N: u32;\n// unroll\nfor (var i = 0u; i < N; i++) { }\n", &[]).unwrap_err();
        assert!(e.contains("not a constant"), "{e}");
        let e = specialize(&body("x += 1.0;"), &[("N", 4.0), ("M", 1.0)]).unwrap_err();
        assert!(e.contains("`M`"), "{e}");
        let long = specialize(&body("x[i] += 1.0;"), &[("N", 1000.0)]).unwrap(); // past MAX_COPIES: a loop
        assert!(long.contains("for (var i = 0u; i < N; i++) { x[i] += 1.0; }") && !wants_specialising(&long));
        let src = "// unroll 3\nfor (var i = 0u; i < 4u; i++) { x[i] = 0; }\n\
                   // unroll 4\nfor (var j = 0u; j < 4u; j++) { y[j] = 0; }\n";
        let out = specialize(src, &[]).unwrap();
        assert!(out.contains("for (var i") && !out.contains("for (var j") && out.contains("y[3u] = 0;"), "{out}");
        let e = specialize("// unroll\nfor (var i = 0u; i <= 4u; i++) { }\n", &[]).unwrap_err();
        assert!(e.contains("X < B"), "{e}");
        let e = specialize("// unroll\nlet x = 1;\n", &[]).unwrap_err();
        assert!(e.contains("`for`"), "{e}");
        assert!(specialize(&body("x += 1.0;"), &[("N", 2.5)]).unwrap_err().contains("not a u32"));
    }
}
