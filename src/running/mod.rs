//! Running life: after the app has started, keeps its secrets fresh and
//! tells the supervisor when the app must hear of a change. It owns the
//! token (renewed before expiry, replaced by a fresh login when it can no
//! longer be renewed or is lost), every lease (renewed, or read again before
//! it ends), the KV values (re-checked every `--refresh`), the `[[issue]]`
//! writes (issued again at about two thirds of their lifetime), the
//! re-rendering of files and the change actions, and revocation at exit.
//!
//! # Design
//! A state machine with due times: the token and each read or issue (an
//! [`Item`]) has its next step and when it is due ([`schedule`] decides, with
//! jitter). Requests run as tasks on vinit's one event loop, so a request
//! that hangs never delays forwarding or reaping; [`RunningLife::next_action`]
//! is a cancel-safe future that the supervisor races against signals. It
//! returns only when the app must act: signals to send, or a restart with a
//! fresh environment. Between due times nothing wakes.
//!
//! Vault failing never reaches the app: every failure is logged (with the
//! next try's time) and retried with backoff up to 30 s; the app keeps the
//! values it has.

pub mod changes;
pub mod schedule;

use std::ffi::OsString;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::output::{self, FileOut};
use crate::pump;
use crate::redact::SharedRedactor;
use crate::reference::Read;
use crate::render::Fetched;
use crate::secret::{self, SecretString};
use crate::secrets::startup::{self, Lifetime, Vaulted};
use crate::secrets::{PlacedValue, SecretsPlan};
use crate::signals::SignalNumber;
use crate::vault::auth::{AuthPlan, Login, UnwrappedSecretId};
use crate::vault::{jitter, Answer, Failure, Vault, VaultSettings, RUNNING_REQUEST_TIMEOUT};
use changes::{Changes, Due};
use schedule::{at, refresh_in, renew_in, renewal_was_cut, reread_in, retry_in, soon_in};

/// What happens when a value behind an environment variable changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvOnChange {
    /// A warning names the variable; the app keeps its environment.
    #[default]
    Ignore,
    /// The app is restarted with the new environment.
    Restart,
}

/// Running-life settings from the options.
#[derive(Debug, Clone)]
pub struct LifeSettings {
    pub refresh: Duration,
    pub debounce: Duration,
    pub splay: Duration,
    pub env_on_change: EnvOnChange,
    /// Revoke leases and vinit's own token at exit (`VINIT_REVOKE`).
    pub revoke: bool,
}

/// What the supervisor must do to the app.
#[derive(Debug)]
pub enum Action {
    /// Send each of these signals once.
    Signals(Vec<SignalNumber>),
    /// Stop the app and start it again with this environment.
    Restart(Vec<(OsString, OsString)>),
}

/// How long after the app's start a given token's TTL is looked up.
const LOOKUP_DELAY: Duration = Duration::from_secs(1);

/// How long revocation at exit may take, in all.
pub const REVOKE_LIMIT: Duration = Duration::from_secs(2);

/// The token's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenStep {
    /// Learn a user-supplied token's TTL (`lookup-self`).
    Lookup,
    Renew,
    Login,
}

struct Token {
    value: SecretString,
    /// vinit logged in for it (else the user supplied it: never replaced
    /// or revoked).
    own: bool,
    /// The increment asked for at each renewal.
    ttl: Duration,
    expires: Option<Instant>,
    next: Option<(Instant, TokenStep)>,
    failures: u32,
    in_flight: bool,
    /// Bumped at each login; leases remember the generation they came with.
    generation: u64,
}

/// What an item is: a read (path and version) or an `[[issue]]` write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ItemKind {
    Read(Read),
    Issue(String),
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemKind::Read(read) => write!(f, "{read}"),
            ItemKind::Issue(name) => write!(f, "issue {name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemStep {
    /// Renew the lease.
    Renew,
    /// Read (or issue) again.
    Fetch,
}

/// One read or issue and its lease.
struct Item {
    kind: ItemKind,
    lifetime: Lifetime,
    next: Option<(Instant, ItemStep)>,
    failures: u32,
    in_flight: bool,
    generation: u64,
}

/// A request under way.
enum Job {
    Token(TokenStep),
    Item(usize, ItemStep),
}

/// A finished request.
enum Outcome {
    Answer(Result<Answer, Failure>),
    Login(Result<(Login, Option<UnwrappedSecretId>), String>),
}

/// Counters for tests and debugging (logged at debug level).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub logins: u64,
    pub token_renewals: u64,
    pub lease_renewals: u64,
    pub fetches: u64,
    pub files_rendered: u64,
}

/// The secrets side of vinit once the app runs.
pub struct RunningLife {
    plan: SecretsPlan,
    settings: VaultSettings,
    auth: AuthPlan,
    life: LifeSettings,
    /// The child's environment before secrets.
    base_env: Vec<(OsString, OsString)>,
    /// Built on the first request: running life keeps no connection idle.
    client: Option<Vault>,
    token: Token,
    unwrapped: Option<UnwrappedSecretId>,
    items: Vec<Item>,
    fetched: Fetched,
    /// What the app was started with (the last rendered environment).
    env: Vec<(OsString, OsString)>,
    /// What each template last rendered to.
    rendered: Vec<SecretString>,
    changes: Changes,
    in_flight: JoinSet<(Job, Outcome)>,
    counts: Counts,
    /// A request failed since the last success: when one succeeds again,
    /// everything waiting in backoff is tried at once (catching up).
    failing: bool,
    /// `--redact`: every value placed so far (new ones join before the app
    /// can see them; old ones stay, the app may still print them).
    redaction: Option<(SharedRedactor, Vec<PlacedValue>)>,
}

/// How many placed values `--redact` keeps hiding across rotations.
const MAX_HIDDEN_VALUES: usize = 1024;

impl RunningLife {
    /// Takes over what start-up fetched; `env` is what the app got.
    /// Returns `None` when there is nothing to keep fresh (no Vault).
    pub fn new(
        plan: SecretsPlan,
        vaulted: Vaulted,
        base_env: Vec<(OsString, OsString)>,
        env: Vec<(OsString, OsString)>,
        life: LifeSettings,
    ) -> Option<RunningLife> {
        let (settings, auth) = plan.vault().cloned()?;
        let now = Instant::now();
        let Vaulted {
            login,
            fetched,
            read_lifetimes,
            issue_lifetimes,
            rendered,
            vault,
        } = vaulted;
        // The start-up client goes now, and with it its connections.
        drop(vault);
        let mut token = Token {
            value: login.token,
            own: login.logged_in,
            ttl: Duration::from_secs(login.lease_duration),
            expires: None,
            next: None,
            failures: 0,
            in_flight: false,
            generation: 0,
        };
        schedule_token(&mut token, login.renewable, now);
        let mut items = Vec::new();
        for read in plan.reads() {
            let lifetime = read_lifetimes.get(read).cloned().unwrap_or_default();
            items.push(Item::new(ItemKind::Read(read.clone()), lifetime, now, &life));
        }
        for name in plan.issue_names() {
            let lifetime = issue_lifetimes.get(name).cloned().unwrap_or_default();
            items.push(Item::new(ItemKind::Issue(name.to_string()), lifetime, now, &life));
        }
        let changes = Changes::new(life.debounce, life.splay);
        Some(RunningLife {
            plan,
            settings,
            auth,
            life,
            base_env,
            client: None,
            token,
            unwrapped: None,
            items,
            fetched,
            env,
            rendered,
            changes,
            in_flight: JoinSet::new(),
            counts: Counts::default(),
            failing: false,
            redaction: None,
        })
    }

    /// With `--redact`: values fetched from now on are hidden too, before
    /// any file, signal or restart can hand them to the app.
    pub fn hide_new_values_with(&mut self, redactor: SharedRedactor) {
        let placed = self.plan.placed_values(&self.fetched);
        self.redaction = Some((redactor, placed));
    }

    /// Adds the values now in force to those `--redact` hides.
    fn hide_current_values(&mut self) {
        let Some((redactor, hidden)) = self.redaction.as_mut() else {
            return;
        };
        for value in self.plan.placed_values(&self.fetched) {
            if !hidden
                .iter()
                .any(|known| known.value.expose() == value.value.expose())
            {
                hidden.push(value);
            }
        }
        let excess = hidden.len().saturating_sub(MAX_HIDDEN_VALUES);
        hidden.drain(..excess);
        if let Err(err) = pump::hide(redactor, hidden) {
            tracing::warn!("--redact: cannot hide the new values: {err}");
        }
    }

    /// Waits until the app must act. Cancel-safe: the supervisor races it
    /// against signals, and dropping it loses nothing (requests run as
    /// tasks; their results wait in the join set).
    pub async fn next_action(&mut self) -> Action {
        loop {
            let now = Instant::now();
            if let Some(action) = self.take_action(now) {
                return action;
            }
            self.start_due(now);
            let wake = self.next_wake();
            tokio::select! {
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match joined {
                        Ok((job, outcome)) => self.apply(job, outcome),
                        Err(err) => tracing::warn!("a Vault request task failed: {err}"),
                    }
                }
                () = sleep_until(wake) => {}
            }
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    fn take_action(&mut self, now: Instant) -> Option<Action> {
        match self.changes.take(now)? {
            Due::Signals(signals) if signals.is_empty() => None,
            Due::Signals(signals) => Some(Action::Signals(signals)),
            Due::Restart => Some(Action::Restart(self.env.clone())),
        }
    }

    /// The earliest moment something is due, if anything ever is.
    fn next_wake(&self) -> Option<Instant> {
        let token = self
            .token
            .next
            .filter(|_| !self.token.in_flight)
            .map(|(at, _)| at);
        let items = self
            .items
            .iter()
            .filter(|item| !item.in_flight)
            .filter_map(|item| item.next.map(|(at, _)| at));
        token.into_iter().chain(items).chain(self.changes.due_at()).min()
    }

    /// Starts every request that is due. While a login is due or under way,
    /// reads wait for the new token.
    fn start_due(&mut self, now: Instant) {
        if let Some((when, step)) = self.token.next {
            if when <= now && !self.token.in_flight {
                self.start_token(step);
            }
        }
        if self.token.in_flight && self.token_next_is_login() {
            return;
        }
        for index in 0..self.items.len() {
            let item = &self.items[index];
            if let Some((when, step)) = item.next {
                if when <= now && !item.in_flight {
                    self.start_item(index, step);
                }
            }
        }
    }

    fn token_next_is_login(&self) -> bool {
        matches!(self.token.next, Some((_, TokenStep::Login)))
    }

    fn client(&mut self) -> Option<Vault> {
        if self.client.is_none() {
            match Vault::for_running_life(&self.settings) {
                Ok(client) => self.client = Some(client),
                Err(err) => tracing::warn!("cannot set up the Vault client: {err}"),
            }
        }
        self.client.clone()
    }

    fn start_token(&mut self, step: TokenStep) {
        let Some(vault) = self.client() else {
            self.token.next = Some((at(Instant::now(), schedule::BACKOFF_CAP), step));
            return;
        };
        self.token.in_flight = true;
        let token = self.token.value.clone();
        match step {
            TokenStep::Login => {
                let (auth, unwrapped) = (self.auth.clone(), self.unwrapped.clone());
                tracing::debug!("logging in again ({})", auth.method.name());
                self.in_flight.spawn(async move {
                    let deadline = Instant::now() + RUNNING_REQUEST_TIMEOUT;
                    let result = auth
                        .login(&vault, deadline, unwrapped)
                        .await
                        .map_err(|err| err.to_string());
                    (Job::Token(step), Outcome::Login(result))
                });
            }
            TokenStep::Renew => {
                let body = serde_json::json!({ "increment": self.token.ttl.as_secs() });
                tracing::debug!("renewing the token");
                self.spawn(Job::Token(step), async move {
                    vault.write(Some(&token), "auth/token/renew-self", &body).await
                });
            }
            TokenStep::Lookup => {
                self.spawn(Job::Token(step), async move {
                    vault.read(&token, "auth/token/lookup-self", None).await
                });
            }
        }
    }

    fn start_item(&mut self, index: usize, step: ItemStep) {
        let Some(vault) = self.client() else {
            self.items[index].next = Some((at(Instant::now(), schedule::BACKOFF_CAP), step));
            return;
        };
        let token = self.token.value.clone();
        let item = &mut self.items[index];
        item.in_flight = true;
        let job = Job::Item(index, step);
        match (step, &item.kind) {
            (ItemStep::Renew, kind) => {
                let Some(lease_id) = item.lifetime.lease_id.clone() else {
                    item.in_flight = false;
                    item.next = Some((Instant::now(), ItemStep::Fetch));
                    return;
                };
                tracing::debug!("renewing the lease of {kind}");
                let body = serde_json::json!({
                    "lease_id": lease_id,
                    "increment": item.lifetime.duration.as_secs(),
                });
                self.spawn(job, async move {
                    vault.write(Some(&token), "sys/leases/renew", &body).await
                });
            }
            (ItemStep::Fetch, ItemKind::Read(read)) => {
                tracing::debug!("reading {read} again");
                let read = read.clone();
                self.spawn(
                    job,
                    async move { vault.read(&token, &read.path, read.version).await },
                );
            }
            (ItemStep::Fetch, ItemKind::Issue(name)) => {
                let Some((path, body)) = self.plan.issue(name).map(|(p, b)| (p.to_string(), b.clone()))
                else {
                    return;
                };
                tracing::debug!("issuing {name} again at {path}");
                self.spawn(job, async move { vault.write(Some(&token), &path, &body).await });
            }
        }
    }

    fn spawn(&mut self, job: Job, request: impl Future<Output = Result<Answer, Failure>> + Send + 'static) {
        self.in_flight
            .spawn(async move { (job, Outcome::Answer(request.await)) });
    }

    fn apply(&mut self, job: Job, outcome: Outcome) {
        let now = Instant::now();
        let succeeded = matches!(&outcome, Outcome::Answer(Ok(_)) | Outcome::Login(Ok(_)));
        // Unreachable, overloaded, or a token lost: worth catching up on.
        let backing_off = match &outcome {
            Outcome::Answer(Err(failure)) => {
                failure.is_transient() || matches!(failure, Failure::Status { code: 403, .. })
            }
            Outcome::Login(Err(_)) => true,
            _ => false,
        };
        match (job, outcome) {
            (Job::Token(_), Outcome::Login(result)) => self.logged_in(result, now),
            (Job::Token(step), Outcome::Answer(result)) => self.token_answer(step, result, now),
            (Job::Item(index, step), Outcome::Answer(result)) => self.item_answer(index, step, result, now),
            (Job::Item(..), Outcome::Login(_)) => {}
        }
        if succeeded && self.failing {
            self.catch_up(now);
        } else if backing_off {
            self.failing = true;
        }
    }

    /// Vault answers again: everything waiting in backoff is tried now
    /// (spread over a second), instead of at its backed-off time.
    fn catch_up(&mut self, now: Instant) {
        self.failing = false;
        let soon = || now + jitter(Duration::from_secs(1));
        if self.token.failures > 0 && !self.token.in_flight {
            if let Some((_, step)) = self.token.next {
                self.token.next = Some((soon(), step));
            }
        }
        for item in self.items.iter_mut().filter(|i| i.failures > 0 && !i.in_flight) {
            if let Some((_, step)) = item.next {
                item.next = Some((soon(), step));
            }
        }
        tracing::info!("Vault answers again; catching up");
    }

    fn logged_in(&mut self, result: Result<(Login, Option<UnwrappedSecretId>), String>, now: Instant) {
        self.token.in_flight = false;
        let (login, unwrapped) = match result {
            Ok(done) => done,
            Err(why) => {
                let failure = Failure::Unreachable(why.clone());
                let wait = retry_in(self.token.failures, &failure);
                self.token.failures += 1;
                tracing::warn!("logging in again failed: {why}; next try in {}", seconds(wait));
                self.token.next = Some((now + wait, TokenStep::Login));
                return;
            }
        };
        self.counts.logins += 1;
        self.unwrapped = unwrapped;
        let old_end = self.token.expires;
        self.token.value = login.token;
        self.token.ttl = Duration::from_secs(login.lease_duration);
        self.token.failures = 0;
        self.token.generation += 1;
        schedule_token(&mut self.token, login.renewable, now);
        tracing::debug!("logged in again (token TTL {}s)", login.lease_duration);
        // Leases die with the token that obtained them: read each one again
        // with the new token before the old one ends.
        let generation = self.token.generation;
        for item in &mut self.items {
            if item.lifetime.lease_id.is_some() && item.generation < generation && !item.in_flight {
                let when = match old_end {
                    Some(end) if end > now => now + renew_in(end - now),
                    _ => now,
                };
                let replace = match item.next {
                    None | Some((_, ItemStep::Renew)) => true,
                    Some((at, ItemStep::Fetch)) => when < at,
                };
                if replace {
                    item.next = Some((when, ItemStep::Fetch));
                }
            }
        }
        if self.plan.hands_token_to_app() {
            self.fetched.token = Some(self.token.value.clone());
            self.rerender(now);
        }
    }

    fn token_answer(&mut self, step: TokenStep, result: Result<Answer, Failure>, now: Instant) {
        self.token.in_flight = false;
        match result {
            Ok(answer) => {
                self.token.failures = 0;
                match step {
                    TokenStep::Lookup => {
                        let data = answer.data.as_map();
                        let ttl = data.get("ttl").and_then(|v| v.as_u64()).unwrap_or(0);
                        let creation = data.get("creation_ttl").and_then(|v| v.as_u64()).unwrap_or(ttl);
                        let renewable = data.get("renewable").and_then(|v| v.as_bool()).unwrap_or(false);
                        self.token.ttl = Duration::from_secs(creation.max(ttl));
                        self.token.expires = (ttl > 0).then(|| now + Duration::from_secs(ttl));
                        self.token.next = match (ttl, renewable) {
                            (0, _) => None,
                            (ttl, true) => Some((now + renew_in(Duration::from_secs(ttl)), TokenStep::Renew)),
                            (ttl, false) => {
                                tracing::warn!(
                                    "the Vault token vinit was given expires in {ttl}s and cannot be renewed; \
                                     vinit cannot replace a token it did not log in with"
                                );
                                None
                            }
                        };
                    }
                    TokenStep::Renew => {
                        self.counts.token_renewals += 1;
                        let granted = Duration::from_secs(answer.lease_duration);
                        self.token.expires = Some(now + granted);
                        let cut = renewal_was_cut(self.token.ttl, granted);
                        let step = if cut && self.token.own {
                            TokenStep::Login
                        } else {
                            TokenStep::Renew
                        };
                        tracing::debug!("renewed the token for {}s", granted.as_secs());
                        if cut && !self.token.own {
                            tracing::warn!(
                                "the Vault token vinit was given reaches its max TTL in {}s; vinit cannot replace a \
                                 token it did not log in with",
                                granted.as_secs()
                            );
                        }
                        self.token.next = if granted.is_zero() {
                            self.token.own.then_some((now, TokenStep::Login))
                        } else if cut {
                            Some((now + soon_in(granted), step))
                        } else {
                            Some((now + renew_in(granted), step))
                        };
                    }
                    TokenStep::Login => {}
                }
            }
            Err(failure) if failure.is_transient() => {
                let wait = retry_in(self.token.failures, &failure);
                self.token.failures += 1;
                tracing::warn!(
                    "{} the token failed: {}; next try in {}",
                    if step == TokenStep::Lookup {
                        "looking up"
                    } else {
                        "renewing"
                    },
                    failure.describe(),
                    seconds(wait)
                );
                self.token.next = Some((now + wait, step));
            }
            Err(failure) => {
                if self.token.own {
                    tracing::warn!(
                        "the token vinit logged in with was refused ({}); logging in again",
                        failure.describe()
                    );
                    self.token.expires = None;
                    self.token.next = Some((now, TokenStep::Login));
                } else {
                    tracing::warn!(
                        "the Vault token vinit was given cannot be renewed ({}); vinit cannot replace a token \
                         it did not log in with",
                        failure.describe()
                    );
                    self.token.next = None;
                }
            }
        }
    }

    fn item_answer(&mut self, index: usize, step: ItemStep, result: Result<Answer, Failure>, now: Instant) {
        let Some(item) = self.items.get_mut(index) else {
            return;
        };
        item.in_flight = false;
        let failure = match result {
            Ok(answer) => {
                item.failures = 0;
                match step {
                    ItemStep::Renew => {
                        self.counts.lease_renewals += 1;
                        let granted = Duration::from_secs(answer.lease_duration);
                        let cut = renewal_was_cut(item.lifetime.duration, granted);
                        tracing::debug!("renewed the lease of {} for {}s", item.kind, granted.as_secs());
                        item.next = Some(if cut || granted.is_zero() {
                            // The max TTL is near: read again before it ends.
                            (now + soon_in(granted), ItemStep::Fetch)
                        } else {
                            (now + renew_in(granted), ItemStep::Renew)
                        });
                    }
                    ItemStep::Fetch => {
                        self.counts.fetches += 1;
                        item.lifetime = Lifetime::of(&answer);
                        item.generation = self.token.generation;
                        item.schedule(now, &self.life);
                        let changed = match &item.kind {
                            ItemKind::Read(read) => {
                                let old = self.fetched.reads.get(read);
                                if old.map(|d| d.as_map()) != Some(answer.data.as_map()) {
                                    self.fetched.reads.insert(read.clone(), answer.data);
                                    true
                                } else {
                                    false
                                }
                            }
                            ItemKind::Issue(name) => {
                                self.fetched.issues.insert(name.clone(), answer.data);
                                true
                            }
                        };
                        if changed {
                            tracing::debug!("{} changed", item.kind);
                            self.rerender(now);
                        }
                    }
                }
                return;
            }
            Err(failure) => failure,
        };
        let what = match step {
            ItemStep::Renew => format!("renewing the lease of {}", item.kind),
            ItemStep::Fetch => format!("reading {} again", item.kind),
        };
        match (&failure, step) {
            (f, _) if f.is_transient() => {
                let wait = retry_in(item.failures, f);
                item.failures += 1;
                tracing::warn!("{what} failed: {}; next try in {}", f.describe(), seconds(wait));
                item.next = Some((now + wait, step));
            }
            // The lease is gone (expired, revoked): read again.
            (_, ItemStep::Renew) => {
                tracing::warn!("{what} failed: {}; reading it again", failure.describe());
                item.next = Some((now, ItemStep::Fetch));
            }
            (Failure::Status { code: 403, .. }, ItemStep::Fetch) if self.token.own => {
                // The token may be lost (revoked, Vault restored without it).
                let wait = retry_in(item.failures, &failure);
                item.failures += 1;
                tracing::warn!(
                    "{what} failed: {}; logging in again, next try in {}",
                    failure.describe(),
                    seconds(wait)
                );
                item.next = Some((now + wait, step));
                if !self.token.in_flight && !self.token_next_is_login() {
                    self.token.next = Some((now, TokenStep::Login));
                }
            }
            // Gone or refused for good (404, 400): try again at the next refresh.
            _ => {
                let wait = refresh_in(self.life.refresh);
                tracing::warn!(
                    "{what} failed: {}; the app keeps the value it has; next try in {}",
                    failure.describe(),
                    seconds(wait)
                );
                item.next = Some((now + wait, step));
            }
        }
    }

    /// Renders everything again from the current values: changed files are
    /// written (atomically) and their `on_change` queued; changed variables
    /// queue a restart (`VINIT_ENV_ON_CHANGE=restart`) or a warning.
    fn rerender(&mut self, now: Instant) {
        self.hide_current_values();
        match self.plan.render_env(&self.base_env, &self.fetched) {
            Ok(env) => {
                let changed: Vec<String> = self
                    .plan
                    .referencing_variables()
                    .filter(|name| value_of(&env, name) != value_of(&self.env, name))
                    .map(String::from)
                    .collect();
                if !changed.is_empty() {
                    match self.life.env_on_change {
                        EnvOnChange::Restart => {
                            tracing::info!("{} changed in Vault; restarting the app", changed.join(", "));
                            self.changes.add(crate::secrets::ChangeAction::Restart, now);
                        }
                        EnvOnChange::Ignore => tracing::warn!(
                            "{} changed in Vault; the app keeps the value it started with \
                             (VINIT_ENV_ON_CHANGE=restart restarts it)",
                            changed.join(", ")
                        ),
                    }
                    secret::scrub_env(std::mem::replace(&mut self.env, env));
                }
            }
            Err(err) => tracing::warn!("{err}; the app keeps the values it has"),
        }
        let files = match self.plan.render_files(&self.fetched, false) {
            Ok(files) => files,
            Err(err) => {
                tracing::warn!("{err}; the files keep what they hold");
                return;
            }
        };
        let actions: Vec<_> = self.plan.template_actions().map(|(_, action)| action).collect();
        for (index, file) in files.into_iter().enumerate() {
            if self.rendered.get(index).map(SecretString::expose) == Some(file.contents.expose()) {
                continue;
            }
            if write_file(&file) {
                self.counts.files_rendered += 1;
                if let Some(action) = actions.get(index) {
                    self.changes.add(*action, now);
                }
                if let Some(slot) = self.rendered.get_mut(index) {
                    *slot = file.contents;
                }
            }
        }
    }

    /// Revokes, within [`REVOKE_LIMIT`] in all, the leases vinit holds and
    /// the token it logged in with (which takes its leases with it); a
    /// user-supplied token is never revoked. Nothing when `VINIT_REVOKE=false`.
    pub async fn revoke(mut self) {
        self.in_flight.abort_all();
        tracing::debug!("running life: {:?}", self.counts);
        if !self.life.revoke {
            return;
        }
        let Some(vault) = self.client() else { return };
        let token = self.token.value.clone();
        if self.token.own {
            startup::revoke_token(&vault, &token, REVOKE_LIMIT).await;
            return;
        }
        let mut tasks = JoinSet::new();
        for item in &self.items {
            let Some(lease_id) = item.lifetime.lease_id.clone() else {
                continue;
            };
            let (vault, token) = (vault.clone(), token.clone());
            tasks.spawn(async move {
                let body = serde_json::json!({ "lease_id": lease_id });
                (
                    lease_id,
                    vault.write(Some(&token), "sys/leases/revoke", &body).await,
                )
            });
        }
        let all = async {
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((lease, Ok(_))) => tracing::debug!("revoked lease {lease}"),
                    Ok((lease, Err(failure))) => tracing::warn!(
                        "could not revoke lease {lease} ({}); it ends with its TTL",
                        failure.describe()
                    ),
                    Err(_) => {}
                }
            }
        };
        if tokio::time::timeout(REVOKE_LIMIT, all).await.is_err() {
            tracing::warn!("revoking leases took over 2s; the rest end with their TTL");
        }
    }
}

impl Drop for RunningLife {
    fn drop(&mut self) {
        secret::scrub_env(std::mem::take(&mut self.env));
    }
}

impl Item {
    fn new(kind: ItemKind, lifetime: Lifetime, now: Instant, life: &LifeSettings) -> Item {
        let mut item = Item {
            kind,
            lifetime,
            next: None,
            failures: 0,
            in_flight: false,
            generation: 0,
        };
        item.schedule(now, life);
        item
    }

    /// The next step after a fresh answer.
    fn schedule(&mut self, now: Instant, life: &LifeSettings) {
        let duration = self.lifetime.duration;
        self.next = match &self.kind {
            // A pinned KV version never changes.
            ItemKind::Read(read) if read.version.is_some() => None,
            ItemKind::Read(_) if self.lifetime.lease_id.is_none() => {
                Some((at(now, refresh_in(life.refresh)), ItemStep::Fetch))
            }
            ItemKind::Read(_) if duration.is_zero() => None,
            ItemKind::Read(_) if self.lifetime.renewable => Some((now + renew_in(duration), ItemStep::Renew)),
            ItemKind::Read(_) => Some((now + reread_in(duration), ItemStep::Fetch)),
            ItemKind::Issue(_) if duration.is_zero() => None,
            ItemKind::Issue(_) => Some((now + renew_in(duration), ItemStep::Fetch)),
        };
    }
}

/// The first step for a token: renew a renewable one vinit logged in for,
/// log in again before a non-renewable one ends, look up a given one.
fn schedule_token(token: &mut Token, renewable: bool, now: Instant) {
    token.expires = (!token.ttl.is_zero()).then(|| now + token.ttl);
    token.next = if !token.own {
        // Soon, but off the app's own start-up path, and spread over a fleet.
        Some((now + LOOKUP_DELAY + jitter(LOOKUP_DELAY), TokenStep::Lookup))
    } else if token.ttl.is_zero() {
        None
    } else if renewable {
        Some((now + renew_in(token.ttl), TokenStep::Renew))
    } else {
        Some((now + renew_in(token.ttl), TokenStep::Login))
    };
}

fn value_of<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a OsString> {
    env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Writes one re-rendered file atomically; a failure is a warning (the old
/// file stays, whole).
fn write_file(file: &FileOut) -> bool {
    match output::write_all(std::slice::from_ref(file)) {
        Ok(written) => {
            written.keep();
            tracing::debug!("re-rendered {}", file.destination.display());
            true
        }
        Err(err) => {
            tracing::warn!("{err}; the file keeps what it holds");
            false
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}

fn seconds(wait: Duration) -> String {
    format!("{:.1}s", wait.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life() -> LifeSettings {
        LifeSettings {
            refresh: Duration::from_secs(300),
            debounce: Duration::from_secs(1),
            splay: Duration::ZERO,
            env_on_change: EnvOnChange::Ignore,
            revoke: true,
        }
    }

    fn read(path: &str, version: Option<u64>) -> ItemKind {
        ItemKind::Read(Read {
            path: path.into(),
            version,
        })
    }

    fn lease(seconds: u64, renewable: bool) -> Lifetime {
        Lifetime {
            lease_id: Some("database/creds/app/abc".into()),
            duration: Duration::from_secs(seconds),
            renewable,
        }
    }

    fn due_in(item: &Item, now: Instant) -> Option<(u64, ItemStep)> {
        item.next.map(|(at, step)| ((at - now).as_millis() as u64, step))
    }

    #[test]
    fn each_kind_of_answer_gets_its_next_step() {
        let now = Instant::now();
        let kv = Item::new(read("secret/data/app", None), Lifetime::default(), now, &life());
        let (wait, step) = due_in(&kv, now).unwrap();
        assert_eq!(step, ItemStep::Fetch);
        assert!((270_000..=330_000).contains(&wait), "KV refresh in {wait} ms");

        let pinned = Item::new(
            read("secret/data/app", Some(3)),
            Lifetime::default(),
            now,
            &life(),
        );
        assert_eq!(pinned.next, None, "a pinned version never changes");

        let renewable = Item::new(read("database/creds/app", None), lease(60, true), now, &life());
        let (wait, step) = due_in(&renewable, now).unwrap();
        assert_eq!(step, ItemStep::Renew);
        assert!((36_000..=43_200).contains(&wait), "renewal in {wait} ms");

        let fixed = Item::new(read("aws/creds/app", None), lease(60, false), now, &life());
        let (wait, step) = due_in(&fixed, now).unwrap();
        assert_eq!(step, ItemStep::Fetch);
        assert!((48_000..=54_000).contains(&wait), "re-read in {wait} ms");

        let certificate = Lifetime {
            lease_id: None,
            duration: Duration::from_secs(30),
            renewable: false,
        };
        let issue = Item::new(ItemKind::Issue("tls".into()), certificate, now, &life());
        let (wait, step) = due_in(&issue, now).unwrap();
        assert_eq!(step, ItemStep::Fetch);
        assert!((18_000..=21_600).contains(&wait), "re-issue in {wait} ms");
    }

    #[test]
    fn tokens_are_renewed_replaced_or_looked_up() {
        let now = Instant::now();
        let token = |own, ttl| Token {
            value: SecretString::new("t".into()),
            own,
            ttl: Duration::from_secs(ttl),
            expires: None,
            next: None,
            failures: 0,
            in_flight: false,
            generation: 0,
        };
        let mut own = token(true, 30);
        schedule_token(&mut own, true, now);
        assert!(matches!(own.next, Some((_, TokenStep::Renew))));
        let mut batch = token(true, 30);
        schedule_token(&mut batch, false, now);
        assert!(
            matches!(batch.next, Some((_, TokenStep::Login))),
            "a non-renewable token is replaced"
        );
        let mut root = token(true, 0);
        schedule_token(&mut root, true, now);
        assert_eq!(
            root.next.map(|(_, s)| s),
            None,
            "a token without TTL needs nothing"
        );
        let mut given = token(false, 0);
        schedule_token(&mut given, false, now);
        let (at, step) = given.next.unwrap();
        assert_eq!(step, TokenStep::Lookup);
        assert!(at >= now + LOOKUP_DELAY && at <= now + LOOKUP_DELAY * 2);
    }
}
