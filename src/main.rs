//! The `stowage` binary: parses the command line, loads the configuration and runs a command.

use std::process::ExitCode;

use clap::Parser;
use stowage::app::{self, Roles};
use stowage::cli::client::Client;
use stowage::cli::keys::{self, KeysCommand};
use stowage::cli::{
    Cli, ClientArgs, Command, audit, folder, group, import, item, job, lifecycle, queue, quota, say, sync, webhook,
};
use stowage::config::Settings;
use stowage::services::keys::{KeyService, NewKeyRequest};
use stowage::store::sqlite_file;
use stowage::telemetry::{self, ErrorChain};

/// The allocator: jemalloc, with a background thread that hands memory freed after a burst of
/// requests back to the system within seconds. glibc's malloc kept it: after 32 clients listed
/// 1,000 items at a time the server stayed at 210 MiB resident, 100 MiB of it free
/// (`cargo bench --bench list_memory`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!(
            "warning: jemalloc's background thread did not start ({e}); freed memory returns to the system later"
        );
    }
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), &cli.overrides()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    match run(cli.command, settings).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", ErrorChain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Runs `command`; its exit code, or the error that stopped it.
async fn run(command: Command, settings: Settings) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        Command::Serve { no_workers, .. } => {
            let roles = Roles {
                http: true,
                workers: !no_workers,
            };
            app::run_until_signal(settings, roles).await?;
        }
        Command::Worker => {
            let roles = Roles {
                http: false,
                workers: true,
            };
            app::run_until_signal(settings, roles).await?;
        }
        Command::Migrate => {
            app::open_store(&settings).await?;
            say("migrations applied");
        }
        Command::PrintConfig => say(settings.to_masked_toml().trim_end()),
        Command::Keys { command } => run_keys(command, &settings).await?,
        Command::Folder { client, command } => {
            folder::run(&client_for(&client, &settings), command, client.json).await?
        }
        Command::Group { client, command } => group::run(&client_for(&client, &settings), command, client.json).await?,
        Command::Sync { client, args } => {
            return Ok(sync::run(&client_for(&client, &settings), args, client.json).await?);
        }
        Command::Import { client, args } => {
            return Ok(import::run(&client_for(&client, &settings), args, client.json).await?);
        }
        Command::Job { client, command } => {
            return Ok(job::run(&client_for(&client, &settings), command, client.json).await?);
        }
        Command::Item { client, command } => item::run(&client_for(&client, &settings), command, client.json).await?,
        Command::Reencode {
            client,
            ids,
            force,
            title,
            wait,
        } => {
            let api = client_for(&client, &settings);
            return Ok(lifecycle::reencode(&api, ids, force, title, wait, client.json).await?);
        }
        Command::Trash { client, command } => {
            lifecycle::trash(&client_for(&client, &settings), command, client.json).await?
        }
        Command::Audit { client, args } => audit::run(&client_for(&client, &settings), args, client.json).await?,
        Command::Quota { client, command } => quota::run(&client_for(&client, &settings), command, client.json).await?,
        Command::Queue { client, command } => queue::run(&client_for(&client, &settings), command, client.json).await?,
        Command::Webhook { client, command } => {
            webhook::run(&client_for(&client, &settings), command, client.json).await?
        }
        Command::Expiry { client, command } => {
            return Ok(lifecycle::expiry(&client_for(&client, &settings), command, client.json).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `stowage keys …`: `create --name` on the database directly, the rest through a server.
async fn run_keys(command: KeysCommand, settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        KeysCommand::Create {
            name: Some(name),
            admin,
            label,
            scope,
            expires_at,
            client,
            ..
        } => {
            let request: NewKeyRequest = serde_json::from_value(keys::key_request(None, label, scope, expires_at))?;
            if let Some(file) = sqlite_file(&settings.database.url).filter(|file| !file.exists()) {
                return Err(format!(
                    "no catalog at {}: run this where the server's data directory is, or pass its --data-dir (or STOWAGE__DATABASE__URL); a server creates the catalog on its first start",
                    file.display()
                )
                .into());
            }
            let store = app::open_store(settings).await?;
            let created = KeyService::new(store).create_direct(&name, admin, request).await?;
            keys::print_created(&serde_json::to_value(created)?, client.json);
        }
        KeysCommand::Create {
            name: None,
            user,
            label,
            scope,
            expires_at,
            client,
            ..
        } => {
            let body = keys::key_request(user, label, scope, expires_at);
            keys::create(&client_for(&client, settings), body, client.json).await?;
        }
        KeysCommand::List { user, client } => keys::list(&client_for(&client, settings), user, client.json).await?,
        KeysCommand::Revoke { id, client } => keys::revoke(&client_for(&client, settings), &id, client.json).await?,
    }
    Ok(())
}

/// A client with the key from `--api-key`, `STOWAGE_API_KEY`, or `DATA_DIR/admin.key`.
fn client_for(args: &ClientArgs, settings: &Settings) -> Client {
    if let Some(key) = &args.api_key {
        return Client::new(&args.server, Some(key.clone()), "--api-key or STOWAGE_API_KEY");
    }
    let file = settings.data_dir.join("admin.key");
    match std::fs::read_to_string(&file) {
        Ok(key) => Client::new(&args.server, Some(key.trim().to_owned()), file.display().to_string()),
        Err(_) => Client::new(
            &args.server,
            None,
            format!("no --api-key, no STOWAGE_API_KEY, and no {}", file.display()),
        ),
    }
}
