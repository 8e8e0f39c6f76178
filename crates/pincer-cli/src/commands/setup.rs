//! `pincer setup`: a first configuration — a model provider, one channel — written after each
//! credential was tried against its service, ending with the command that starts the gateway.
//! Secrets stay in the environment: the file names them as `${VAR}`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use pincer_core::StatePaths;
use pincer_core::config::process_env;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Ask nothing: every answer comes from the flags (for scripts).
    #[arg(long)]
    non_interactive: bool,
    /// Model provider: openai, anthropic, or any OpenAI-compatible name (e.g. ollama).
    #[arg(long, value_name = "NAME")]
    model_provider: Option<String>,
    /// The provider's API base URL (default: the provider's own).
    #[arg(long, value_name = "URL")]
    model_base_url: Option<String>,
    /// The model id (default: gpt-4o for openai, claude-sonnet-4-5 for anthropic).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// Environment variable holding the provider's API key (written as `${NAME}`, never the key).
    #[arg(long, value_name = "NAME")]
    api_key_env: Option<String>,
    /// The channel to announce to: telegram, discord, slack or inbox.
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// Environment variable holding the Telegram bot token.
    #[arg(long, value_name = "NAME")]
    telegram_token_env: Option<String>,
    /// Environment variable holding the Discord bot token.
    #[arg(long, value_name = "NAME")]
    discord_token_env: Option<String>,
    /// Environment variable holding the Slack bot token.
    #[arg(long, value_name = "NAME")]
    slack_token_env: Option<String>,
    /// The channel's API base URL (Telegram apiRoot, Discord/Slack apiBaseUrl), for a proxy or a test server.
    #[arg(long, value_name = "URL")]
    channel_base_url: Option<String>,
    /// Where the first job announces (a chat id for Telegram, channel:<id> for Discord, a channel for Slack).
    #[arg(long, value_name = "TARGET")]
    to: Option<String>,
    /// Replace an existing config file.
    #[arg(long)]
    force: bool,
}

/// Asks on the terminal unless non-interactive; `default` is taken on an empty answer.
fn ask(
    interactive: bool,
    given: Option<String>,
    question: &str,
    default: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if given.is_some() || !interactive {
        return Ok(given.or_else(|| default.map(String::from)));
    }
    let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
    eprint!("{question}{shown}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim();
    Ok(if line.is_empty() { default.map(String::from) } else { Some(line.to_string()) })
}

pub fn run(args: SetupArgs, paths: &StatePaths) -> anyhow::Result<ExitCode> {
    let path = &paths.config_path;
    if path.exists() && !args.force {
        bail!(
            "{} exists already: setup does not overwrite it (pass --force to replace it, or change it with `pincer config set`)",
            path.display()
        );
    }
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    if !args.non_interactive && !interactive {
        bail!("no terminal to ask on: pass --non-interactive with the answers as flags (see `pincer setup --help`)");
    }
    let provider =
        ask(interactive, args.model_provider, "Model provider (openai, anthropic, or a name)", Some("openai"))?
            .unwrap_or_default();
    let (api, base, model) = match provider.as_str() {
        "anthropic" => ("anthropic-messages", "https://api.anthropic.com", "claude-sonnet-4-5"),
        "openai" => ("openai-completions", "https://api.openai.com/v1", "gpt-4o"),
        _ => ("openai-completions", "http://127.0.0.1:11434/v1", "llama3.2"),
    };
    let base = ask(interactive, args.model_base_url, "API base URL", Some(base))?.unwrap_or_default();
    let model = ask(interactive, args.model, "Model id", Some(model))?.unwrap_or_default();
    let key_env = ask(interactive, args.api_key_env, "Environment variable with the API key (empty: none)", None)?;
    let key = key_env.as_deref().map(|name| {
        process_env(name).ok_or_else(|| {
            anyhow::anyhow!("{name} is not set: export it first (setup writes `${{{name}}}`, not the key)")
        })
    });
    let key = key.transpose()?;
    let channel =
        ask(interactive, args.channel, "Channel (telegram, discord, slack, inbox)", Some("inbox"))?.unwrap_or_default();
    let (token_flag, token_key, base_key) = match channel.as_str() {
        "telegram" => (args.telegram_token_env, "botToken", "apiRoot"),
        "discord" => (args.discord_token_env, "token", "apiBaseUrl"),
        "slack" => (args.slack_token_env, "botToken", "apiBaseUrl"),
        "inbox" => (None, "", ""),
        other => bail!("unknown channel `{other}`: use telegram, discord, slack or inbox"),
    };
    let mut channels = json!({});
    let mut channel_token = None;
    if channel != "inbox" {
        let question = format!("Environment variable with the {channel} bot token");
        let Some(name) = ask(interactive, token_flag, &question, None)? else {
            bail!("{channel} needs a bot token: pass --{channel}-token-env NAME with the token in $NAME");
        };
        let token = process_env(&name)
            .ok_or_else(|| anyhow::anyhow!("{name} is not set: export the {channel} bot token in it first"))?;
        channels[channel.as_str()] = json!({ token_key: format!("${{{name}}}") });
        if let Some(url) = &args.channel_base_url {
            channels[channel.as_str()][base_key] = url.clone().into();
        }
        channel_token = Some(token);
    }
    let to = ask(interactive, args.to, "Where the first job announces (empty: decide later)", None)?;

    // Each credential tried before anything is written.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        pincer_core::tls::install_default_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
        println!("model {provider}/{model}: {}", probe_model(&http, api, &base, key.as_deref()).await?);
        if let Some(token) = &channel_token {
            println!(
                "channel {channel}: {}",
                probe_channel(&http, &channel, args.channel_base_url.as_deref(), token).await?
            );
        }
        anyhow::Ok(())
    })?;

    let mut provider_entry = json!({ "api": api, "baseUrl": base, "models": [{ "id": model }] });
    if let Some(name) = &key_env {
        provider_entry["apiKey"] = format!("${{{name}}}").into();
    }
    let config = json!({
        "gateway": { "port": 18789, "bind": "loopback", "auth": { "mode": "token", "token": pincer_core::random_token() } },
        "models": { "providers": { provider.as_str(): provider_entry } },
        "agents": { "defaults": { "model": { "primary": format!("{provider}/{model}") } } },
        "channels": channels,
    });
    let text = format!(
        "// Pincer configuration (JSON5), written by `pincer setup`; see README.md for every key.\n{}\n",
        serde_json::to_string_pretty(&config)?
    );
    pincer_core::Config::parse(&text, &process_env)
        .map_err(|e| anyhow::anyhow!("setup made a config that does not check ({e}); nothing was written"))?;
    write_private(path, &text)?;
    println!("Wrote {}.", path.display());
    let target = match (&to, channel.as_str()) {
        (_, "inbox") => " --channel inbox".to_string(),
        (Some(to), c) => format!(" --channel {c} --to {to}"),
        (None, c) => format!(" --channel {c} --to <target>"),
    };
    println!("Start the gateway:  pincer gateway   (or install it as a service)");
    println!(
        "Then a first job:   pincer cron add --name daily-brief --cron '0 7 * * *' --message 'Summarise the news' --announce{target}"
    );
    Ok(ExitCode::SUCCESS)
}

/// Lists the provider's models with the key: a refused key fails, anything else says what it saw.
async fn probe_model(http: &reqwest::Client, api: &str, base: &str, key: Option<&str>) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let req = match api {
        "anthropic-messages" => http
            .get(format!("{base}/v1/models"))
            .header("x-api-key", key.unwrap_or_default())
            .header("anthropic-version", "2023-06-01"),
        _ => {
            let req = http.get(format!("{base}/models"));
            match key {
                Some(k) => req.bearer_auth(k),
                None => req,
            }
        }
    };
    let res = req.send().await.with_context(|| format!("cannot reach {base}: check --model-base-url"))?;
    match res.status().as_u16() {
        200..=299 => Ok("the key works".into()),
        401 | 403 => bail!("{base} refused the API key (HTTP {}): check the variable's value", res.status().as_u16()),
        code => Ok(format!("reachable (HTTP {code} for its model list; the key is checked at the first run)")),
    }
}

/// One authenticated call each channel answers cheaply: Telegram `getMe`, Discord `users/@me`,
/// Slack `auth.test`.
async fn probe_channel(
    http: &reqwest::Client,
    channel: &str,
    base: Option<&str>,
    token: &str,
) -> anyhow::Result<String> {
    let (req, base) = match channel {
        "telegram" => {
            let root = base.unwrap_or("https://api.telegram.org").trim_end_matches('/').to_string();
            (http.get(format!("{root}/bot{token}/getMe")), root)
        }
        "discord" => {
            let b = base.unwrap_or("https://discord.com/api/v10").trim_end_matches('/').to_string();
            (http.get(format!("{b}/users/@me")).header("Authorization", format!("Bot {token}")), b)
        }
        _ => {
            let b = base.unwrap_or("https://slack.com/api").trim_end_matches('/').to_string();
            (http.post(format!("{b}/auth.test")).bearer_auth(token), b)
        }
    };
    let res = req.send().await.with_context(|| format!("cannot reach {base}"))?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_default();
    if status == 200 && body["ok"] != false {
        let who = body["result"]["username"].as_str().or(body["username"].as_str()).or(body["user"].as_str());
        return Ok(match who {
            Some(name) => format!("the token works (bot {name})"),
            None => "the token works".into(),
        });
    }
    bail!("{channel} refused the token (HTTP {status}): check the variable's value")
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
