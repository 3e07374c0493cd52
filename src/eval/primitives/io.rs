//! Output: `echo` (the human form and a newline), `probe` (the source form, passing the value
//! on), written to the sink the caller of the evaluator gave; and files: `existsFile`,
//! `readFile`, `writeFile`, `removeFile`, `fileSize` and `listFiles` (paths as given, relative
//! to the working directory). The last two are not the reference VM's: spry-src's `FileUtil`
//! needs them, and they only read.

use super::super::print::{form, repr};
use super::super::value::Value;
use super::super::{EvalError, EvalResult, Interp};

pub(super) const PRIMITIVES: super::Table = &[
    ("echo", false, echo),
    ("probe", false, probe),
    ("existsFile", false, exists_file),
    ("readFile", false, read_file),
    ("writeFile", false, write_file),
    ("removeFile", false, remove_file),
    ("fileSize", false, file_size),
    ("listFiles", false, list_files),
];

fn emit(spry: &mut Interp<'_>, text: &str) -> EvalResult<()> {
    let out = spry.out();
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| EvalError::runtime(format!("cannot write the output: {e}")))
}

fn echo(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.arg()?;
    emit(spry, &form(&v))?;
    Ok(Value::Nil)
}

fn probe(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let v = spry.arg()?;
    emit(spry, &repr(&v))?;
    Ok(v)
}

fn path(word: &str, v: &Value) -> EvalResult<std::path::PathBuf> {
    let bytes = super::bytes(word, v)?;
    Ok(std::path::PathBuf::from(
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn file_error(word: &str, path: &std::path::Path, e: &std::io::Error) -> EvalError {
    EvalError::runtime(format!("{word}: {}: {e}", path.display()))
}

fn exists_file(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let p = path("existsFile", &spry.arg()?)?;
    Ok(Value::Bool(p.is_file()))
}

fn read_file(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let p = path("readFile", &spry.arg()?)?;
    std::fs::read(&p)
        .map(Value::str)
        .map_err(|e| file_error("readFile", &p, &e))
}

fn write_file(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let p = path("writeFile", &spry.arg()?)?;
    let contents = spry.arg()?;
    let bytes = super::bytes("writeFile", &contents)?;
    std::fs::write(&p, bytes).map_err(|e| file_error("writeFile", &p, &e))?;
    Ok(contents)
}

fn remove_file(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let p = path("removeFile", &spry.arg()?)?;
    std::fs::remove_file(&p).map_err(|e| file_error("removeFile", &p, &e))?;
    Ok(Value::Nil)
}

fn file_size(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let p = path("fileSize", &spry.arg()?)?;
    let meta = std::fs::metadata(&p).map_err(|e| file_error("fileSize", &p, &e))?;
    Ok(Value::Int(i64::try_from(meta.len()).unwrap_or(i64::MAX)))
}

/// The names (not paths) of the plain files in a directory, sorted, so a listing is the same
/// on every run and every file system.
fn list_files(spry: &mut Interp<'_>) -> EvalResult<Value> {
    let p = path("listFiles", &spry.arg()?)?;
    let entries = std::fs::read_dir(&p).map_err(|e| file_error("listFiles", &p, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| file_error("listFiles", &p, &e))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(Value::block(names.into_iter().map(Value::str).collect()))
}
