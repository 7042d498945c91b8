//! The query string of a request, read the PHP way (`filter[…]`, `order[…]`, `with`), and
//! the same query re-encoded with another `page` for a list's `_links`.

/// A query string as PHP reads it, keys and values percent-decoded: `filter[type][]=a` has the
/// path `["filter", "type", ""]`. The pairs keep their order (for the `_links`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// (decoded key, its bracket path, decoded value).
    pairs: Vec<(String, Vec<String>, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| {
                let path = key_path(&k);
                (k.into_owned(), path, v.into_owned())
            })
            .filter(|(k, _, _)| !k.is_empty())
            .collect();
        Query { pairs }
    }

    /// The value at exactly this path (the last one when repeated).
    pub fn get(&self, path: &[&str]) -> Option<&str> {
        self.pairs.iter().rev().find(|(_, p, _)| same_path(p, path)).map(|(_, _, v)| v.as_str())
    }

    /// Every value at this path, or one level below it under `[]` or `[n]`:
    /// `filter[id]=1`, `filter[id][]=1&filter[id][]=2`, `filter[id][0]=1&filter[id][1]=2`.
    pub fn list(&self, path: &[&str]) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(_, p, _)| {
                same_path(p, path) || (p.len() == path.len() + 1 && same_path(&p[..path.len()], path) && p[path.len()].bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// `with=a,b` as ["a", "b"].
    pub fn with(&self) -> Vec<&str> {
        self.get(&["with"]).map(|w| w.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
    }

    /// The first `order[field]=asc|desc`: (field, descending).
    pub fn order(&self) -> Option<(&str, bool)> {
        self.pairs.iter().find_map(|(_, p, v)| match p.as_slice() {
            [o, field] if o == "order" => Some((field.as_str(), v.trim().eq_ignore_ascii_case("desc"))),
            _ => None,
        })
    }

    /// `k=v&…`, decoded: what [`MockState::request_log`] records.
    pub fn decoded(&self) -> String {
        self.pairs.iter().map(|(k, _, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }

    /// The same query percent-encoded (as the vendor's hrefs are) with `page` replaced in
    /// place, or appended.
    pub fn with_page(&self, page: usize) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        let mut paged = false;
        for (k, _, v) in &self.pairs {
            if k == "page" {
                if !paged {
                    s.append_pair("page", &page.to_string());
                    paged = true;
                }
            } else {
                s.append_pair(k, v);
            }
        }
        if !paged {
            s.append_pair("page", &page.to_string());
        }
        s.finish()
    }
}

fn same_path(p: &[String], path: &[&str]) -> bool {
    p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b)
}

/// `filter[type][]` → ["filter", "type", ""].
fn key_path(key: &str) -> Vec<String> {
    let (base, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let mut path = vec![base.to_string()];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(end) = inner.find(']') else { break };
        path.push(inner[..end].to_string());
        rest = &inner[end + 1..];
    }
    path
}
