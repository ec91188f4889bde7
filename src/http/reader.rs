//! Who the request being answered is from, for the error messages whose detail depends on who
//! reads them (a quota refusal tells a user's usage only to that user and to admins).

tokio::task_local! {
    /// The caller's name and whether they are an admin.
    static READER: (String, bool);
}

/// Runs `answer` (the rest of a request) as answering `reader` (name, admin).
pub async fn answering<T>(reader: (String, bool), answer: impl Future<Output = T>) -> T {
    READER.scope(reader, answer).await
}

/// The name of the caller whose request is being answered, and whether they are an admin;
/// `None` outside a request that has one.
pub fn current() -> Option<(String, bool)> {
    READER.try_with(Clone::clone).ok()
}
