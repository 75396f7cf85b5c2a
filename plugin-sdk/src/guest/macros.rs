//! `export_placement!`, `export_fleet_placement!`, `export_auth!`, `export_autoscale!`: one line
//! to turn a type implementing a hook trait into the plugin's exports.

/// Exports a [`Placement`](crate::guest::Placement) implementation as the plugin's
/// `placement-plugin` world.
#[macro_export]
macro_rules! export_placement {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __MafaldaPlacementExport;

        impl $crate::guest::bindings::placement::exports::mafalda::plugin::placement::Guest for __MafaldaPlacementExport {
            fn place(
                request: $crate::guest::wit::PlacementRequest,
                cells: $crate::guest::wit::Candidates,
            ) -> $crate::guest::wit::Decision {
                $crate::guest::convert::place::<$policy>(request, cells)
            }
        }

        impl $crate::guest::bindings::placement::exports::mafalda::plugin::lifecycle::Guest for __MafaldaPlacementExport {
            fn configure(
                config: ::std::vec::Vec<$crate::guest::wit::ConfigEntry>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                <$policy as $crate::guest::Placement>::configure(&$crate::guest::convert::config(config))
            }
        }

        // The component's exports exist only in the wasm build; natively (unit tests) the
        // trait impls above still type-check.
        #[cfg(target_arch = "wasm32")]
        $crate::guest::bindings::placement::export_placement_world!(__MafaldaPlacementExport with_types_in $crate::guest::bindings::placement);
    };
}

/// Exports a [`Placement`](crate::guest::Placement) implementation that also implements
/// [`NodeSelection`](crate::guest::NodeSelection) as the plugin's `fleet-placement-plugin` world
/// (contract 0.1.3; a host before 0.1.3 refuses it).
#[macro_export]
macro_rules! export_fleet_placement {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __MafaldaFleetPlacementExport;

        impl $crate::guest::bindings::fleet::exports::mafalda::plugin::placement::Guest for __MafaldaFleetPlacementExport {
            fn place(
                request: $crate::guest::wit::PlacementRequest,
                cells: $crate::guest::wit::Candidates,
            ) -> $crate::guest::wit::Decision {
                $crate::guest::convert::place::<$policy>(request, cells)
            }
        }

        impl $crate::guest::bindings::fleet::exports::mafalda::plugin::node_selection::Guest for __MafaldaFleetPlacementExport {
            fn select_nodes(
                request: $crate::guest::convert::node_wit::NodeRequest,
                nodes: $crate::guest::convert::node_wit::FleetNodes,
            ) -> ::std::vec::Vec<u32> {
                $crate::guest::convert::select_nodes::<$policy>(request, nodes)
            }
        }

        impl $crate::guest::bindings::fleet::exports::mafalda::plugin::lifecycle::Guest for __MafaldaFleetPlacementExport {
            fn configure(
                config: ::std::vec::Vec<$crate::guest::wit::ConfigEntry>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                <$policy as $crate::guest::Placement>::configure(&$crate::guest::convert::config(config))
            }
        }

        // The component's exports exist only in the wasm build; natively (unit tests) the
        // trait impls above still type-check.
        #[cfg(target_arch = "wasm32")]
        $crate::guest::bindings::fleet::export_fleet_placement_world!(__MafaldaFleetPlacementExport with_types_in $crate::guest::bindings::fleet);
    };
}

/// Exports an [`Auth`](crate::guest::Auth) implementation as the plugin's `auth-plugin` world.
#[macro_export]
macro_rules! export_auth {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __MafaldaAuthExport;

        impl $crate::guest::bindings::auth::exports::mafalda::plugin::auth::Guest for __MafaldaAuthExport {
            fn authorize(
                request: $crate::guest::wit::AuthRequest,
            ) -> ::std::result::Result<$crate::guest::wit::Grant, $crate::guest::wit::Denial> {
                $crate::guest::convert::authorize::<$policy>(request)
            }
        }

        impl $crate::guest::bindings::auth::exports::mafalda::plugin::lifecycle::Guest for __MafaldaAuthExport {
            fn configure(
                config: ::std::vec::Vec<$crate::guest::wit::ConfigEntry>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                <$policy as $crate::guest::Auth>::configure(&$crate::guest::convert::config(config))
            }
        }

        // The component's exports exist only in the wasm build; natively (unit tests) the
        // trait impls above still type-check.
        #[cfg(target_arch = "wasm32")]
        $crate::guest::bindings::auth::export_auth_world!(__MafaldaAuthExport with_types_in $crate::guest::bindings::auth);
    };
}

/// Exports an [`Autoscale`](crate::guest::Autoscale) implementation as the plugin's
/// `autoscale-plugin` world.
#[macro_export]
macro_rules! export_autoscale {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __MafaldaAutoscaleExport;

        impl $crate::guest::bindings::autoscale::exports::mafalda::plugin::autoscale::Guest for __MafaldaAutoscaleExport {
            fn evaluate(snapshot: $crate::guest::wit::ClusterSnapshot) -> ::std::vec::Vec<$crate::guest::wit::Action> {
                $crate::guest::convert::evaluate::<$policy>(snapshot)
            }
        }

        impl $crate::guest::bindings::autoscale::exports::mafalda::plugin::lifecycle::Guest for __MafaldaAutoscaleExport {
            fn configure(
                config: ::std::vec::Vec<$crate::guest::wit::ConfigEntry>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                <$policy as $crate::guest::Autoscale>::configure(&$crate::guest::convert::config(config))
            }
        }

        // The component's exports exist only in the wasm build; natively (unit tests) the
        // trait impls above still type-check.
        #[cfg(target_arch = "wasm32")]
        $crate::guest::bindings::autoscale::export_autoscale_world!(__MafaldaAutoscaleExport with_types_in $crate::guest::bindings::autoscale);
    };
}
