//! What a user types for a job, delivery or device: its id, a unique prefix of the id, or (where
//! the thing has one) its name; one message for "not found" and one for "ambiguous".

/// One thing the given text may name (`name: None` for things without one).
pub struct Candidate {
    pub id: String,
    pub name: Option<String>,
}

/// The id `given` names among `candidates`: an exact id first, else the one candidate whose id
/// starts with it or whose name is it. `what` is the thing's noun (`job`), `list` the command that
/// lists them.
/// `named`: the things have names (the messages then say so).
pub fn resolve(given: &str, candidates: &[Candidate], what: &str, list: &str, named: bool) -> anyhow::Result<String> {
    if let Some(c) = candidates.iter().find(|c| c.id == given) {
        return Ok(c.id.clone());
    }
    let matches: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| (!given.is_empty() && c.id.starts_with(given)) || c.name.as_deref() == Some(given))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(anyhow::anyhow!(
            "no {what} matches `{given}` (by id, unique id prefix{}): see `{list}`",
            if named { " or name" } else { "" }
        )),
        many => {
            let shown: Vec<String> = many
                .iter()
                .map(|c| match &c.name {
                    Some(name) => format!("{} \"{name}\"", short(&c.id)),
                    None => short(&c.id),
                })
                .collect();
            Err(anyhow::anyhow!("`{given}` matches {} {what}s ({}): give more of the id", many.len(), shown.join(", ")))
        }
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str) -> Candidate {
        Candidate { id: id.into(), name: Some(name.into()) }
    }

    #[test]
    fn exact_id_prefix_or_name_and_one_message_each_for_none_and_many() {
        let jobs = [c("4f30db01-aaaa", "brief"), c("4f31aaaa-bbbb", "disk"), c("9e000000-cccc", "4f3")];
        let r = |given: &str| resolve(given, &jobs, "job", "pincer cron list --all", true).map_err(|e| e.to_string());
        assert_eq!(r("4f30db01-aaaa").unwrap(), "4f30db01-aaaa");
        assert_eq!(r("4f30").unwrap(), "4f30db01-aaaa");
        assert_eq!(r("disk").unwrap(), "4f31aaaa-bbbb");
        assert_eq!(
            r("nope").unwrap_err(),
            "no job matches `nope` (by id, unique id prefix or name): see `pincer cron list --all`"
        );
        // A prefix of two ids, and a name that is also a prefix: ambiguous, each shown.
        assert_eq!(
            r("4f3").unwrap_err(),
            "`4f3` matches 3 jobs (4f30db01-aaa \"brief\", 4f31aaaa-bbb \"disk\", 9e000000-ccc \"4f3\"): give more of the id"
        );
        assert!(r("").is_err());
        let none = resolve("x", &[], "delivery", "pincer deliveries list", false).unwrap_err().to_string();
        assert_eq!(none, "no delivery matches `x` (by id, unique id prefix): see `pincer deliveries list`");
    }
}
