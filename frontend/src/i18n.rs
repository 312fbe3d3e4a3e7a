//! Chinese and English: every label is given in both, and the page shows
//! the language chosen with the switch (kept in the URL as `?lang=en` so a
//! wall display reloads in the same language).

use leptos::prelude::*;

/// The language shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// The page's language, shared through the context.
#[derive(Clone, Copy)]
pub struct I18n(pub RwSignal<Lang>);

/// Reads `?lang=` and provides the language to the page.
pub fn provide() -> I18n {
    let lang = match crate::route::query("lang").as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    };
    let i = I18n(RwSignal::new(lang));
    provide_context(i);
    i
}

/// The page's language (Chinese when none was provided).
pub fn lang() -> Lang {
    use_context::<I18n>().map_or(Lang::Zh, |i| i.0.get())
}

/// `zh` or `en`, whichever the page shows.
pub fn tr(zh: &'static str, en: &'static str) -> &'static str {
    match lang() {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

/// A node's name in the page's language.
pub fn name<'a>(zh: &'a str, en: &'a str) -> &'a str {
    match lang() {
        Lang::En if !en.is_empty() => en,
        _ => zh,
    }
}

/// The switch: shows the other language's name; remembers the choice in
/// the URL without reloading.
#[component]
pub fn LangSwitch() -> impl IntoView {
    let i = use_context::<I18n>();
    let flip = move |_| {
        if let Some(i) = i {
            let next = i.0.get_untracked().other();
            i.0.set(next);
            crate::route::set_query("lang", next.code());
        }
    };
    view! {
        <button class="lang-switch" data-testid="lang-switch" on:click=flip>
            {move || match lang() { Lang::Zh => "EN", Lang::En => "中文" }}
        </button>
    }
}
